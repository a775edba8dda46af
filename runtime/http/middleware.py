"""Plain ASGI middleware (not BaseHTTPMiddleware, which would get in the way of streaming and disconnects)."""

import hmac
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.engine.metrics import RuntimeMetrics
from runtime.errors import ApiError

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})
# Metric labels come from these fixed sets, never from what a client sends: any other method is
# `other`, any path no route matched is `unmatched` (a new series per client input would let anyone
# grow the metrics without bound).
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"


class BearerAuthMiddleware:
    """Defence in depth behind Zero Trust Access: every route but the health checks needs the token."""

    def __init__(self, app: ASGIApp, token: str):
        self._app = app
        self._expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self._app(scope, receive, send)
            return
        presented = dict(scope["headers"]).get(b"authorization", b"")
        if hmac.compare_digest(presented, self._expected):
            await self._app(scope, receive, send)
            return
        error = ApiError(
            "unauthorized",
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await error.response()(scope, receive, send)


class MetricsMiddleware:
    """Counts requests by route template, method and status (all bounded); times them to the last byte."""

    def __init__(self, app: ASGIApp, metrics: RuntimeMetrics):
        self._app = app
        self._metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_and_record)
        finally:
            # The matched route's template (`/v1/x/{id}`), never the path the client sent.
            route = getattr(scope.get("route"), "path", UNMATCHED_ROUTE)
            method = scope["method"] if scope["method"] in KNOWN_METHODS else OTHER_METHOD
            self._metrics.requests.labels(route=route, method=method, status=str(status)).inc()
            self._metrics.request_seconds.labels(route=route).observe(time.perf_counter() - started)
