"""Stopping without losing work: on SIGTERM the runtime stops admitting, finishes what it accepted, exits.

ECS (a deployment, a scale-in, an instance drain) stops a task with SIGTERM and, `stopTimeout` seconds
later, SIGKILL. Between the two the runtime keeps listening, so a request that still arrives on a kept-
alive connection gets a clear 503 + Retry-After instead of a reset, `/readyz` turns 503, and every request
accepted before the signal is served to its last byte (streams included). Once none is left, or the grace
period ran out, the server shuts down and the process exits (0, or 1 when requests were cut off).

`DrainingServer.handle_exit` runs as the signal handler and only records the request; the decision to
stop is taken on the event loop, in uvicorn's once-per-tick hook.
"""

import logging
import signal
import time
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from runtime.engine.load import LoadTracker
from runtime.errors import ApiError

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 2
# Routes that answer while draining: liveness, readiness (which reports the drain) and the metrics.
SERVED_WHILE_DRAINING = frozenset({"/healthz", "/readyz", "/metrics"})


def shutting_down() -> ApiError:
    return ApiError(
        "shutting_down",
        "this runtime is shutting down and takes no new requests; retry (another instance will answer)",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class Drain:
    def __init__(self, load: LoadTracker, grace_s: float):
        self._load = load
        self._grace_s = grace_s
        self._requested_at: float | None = None
        self.cut_off = 0  # requests still open when the grace period ran out

    @property
    def requested(self) -> bool:
        return self._requested_at is not None

    def begin(self) -> None:
        if self._requested_at is None:
            self._requested_at = time.monotonic()

    def done(self, now: float) -> bool:
        """True once nothing accepted is left, or the grace period is over (then `cut_off` says how many)."""
        if self._requested_at is None:
            return False
        open_requests = self._load.open_requests
        if open_requests == 0:
            return True
        if now - self._requested_at >= self._grace_s:
            self.cut_off = open_requests
            log.warning(
                "drain: the %.0fs grace period is over; cutting off %d requests", self._grace_s, open_requests
            )
            return True
        return False


class DrainMiddleware:
    """Counts each request from acceptance to its last byte; refuses new ones once the drain began."""

    def __init__(self, app: ASGIApp, load: LoadTracker, drain: Drain):
        self._app = app
        self._load = load
        self._drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in SERVED_WHILE_DRAINING:
            await self._app(scope, receive, send)
            return
        # Counted before the check: a drain that begins in between then waits for this request.
        self._load.request_opened()
        try:
            if self._drain.requested:
                await shutting_down().response()(scope, receive, send)
                return
            await self._app(scope, receive, send)
        finally:
            self._load.request_closed()


class DrainingServer(uvicorn.Server):
    """uvicorn, except that SIGTERM drains first (SIGINT, e.g. Ctrl-C in `make dev`, stops as before)."""

    def __init__(self, config: uvicorn.Config, drain: Drain):
        super().__init__(config)
        self._drain = drain

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self.should_exit:
            self._drain.begin()
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain.requested and not self.should_exit and self._drain.done(time.monotonic()):
            log.info("drain: done, stopping")
            self.should_exit = True
        return await super().on_tick(counter)
