"""Plain ASGI middleware (not BaseHTTPMiddleware, which would get in the way of streaming and disconnects)."""

import hmac
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from runtime.errors import ApiError
from runtime.metrics import RuntimeMetrics

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"})


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
            401,
            "unauthorized",
            "missing or invalid bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
        await error.response()(scope, receive, send)


class MetricsMiddleware:
    """Counts requests by route template (bounded labels) and status; times them to the last byte."""

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
            route = scope.get("route")
            label = getattr(route, "path", "unmatched")
            self._metrics.requests.labels(route=label, method=scope["method"], status=str(status)).inc()
            self._metrics.request_seconds.labels(route=label).observe(time.perf_counter() - started)
