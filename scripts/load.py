"""Send many requests with bounded concurrency and keep every outcome (for the e2e tests and bench/e2e.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

# What `wrangler dev`'s own proxy answers (503, text/plain) when its fetch to workerd fails under a POST
# (seen after the Worker answered an over-long body early, and rarely under heavy concurrency): the proxy
# retries GET/HEAD itself but not POST. Such a request is sent again (counted in
# `Outcome.dev_proxy_retries`), so callers can check that it happened rarely and cost the Worker nothing
# (e.g. by counting D1 request_metrics rows). An answer from the Worker itself is never retried. Under
# 32-concurrent load on 2 cores the local server also, rarely, closes a connection without sending any
# answer; both clients resend that too (`send_all` under the same count and the same proof).
DEV_PROXY_DROPPED = b"Your worker restarted mid-request"
DEV_PROXY_MAX_RETRIES = 3


def dropped_by_dev_proxy(response: httpx.Response) -> bool:
    return response.status_code == 503 and response.content.startswith(DEV_PROXY_DROPPED)


def _closed_without_answer(exc: httpx.HTTPError) -> bool:
    """The server closed the connection before sending a single byte of an answer."""
    return isinstance(exc, httpx.RemoteProtocolError) and "without sending a response" in str(exc)


class DevProxyRetryTransport(httpx.HTTPTransport):
    """`send_all`'s resend policy for a plain client (see DEV_PROXY_DROPPED)."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        for _ in range(DEV_PROXY_MAX_RETRIES):
            try:
                response = super().handle_request(request)
            except httpx.RemoteProtocolError as exc:
                if _closed_without_answer(exc):
                    continue
                raise
            response.read()
            if not dropped_by_dev_proxy(response):
                return response
            response.close()
        return super().handle_request(request)


@dataclass(frozen=True)
class PlannedRequest:
    path: str
    body: dict
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    status: int  # 0 when no HTTP answer came back at all (connection error, timeout)
    latency_s: float
    content: bytes
    headers: dict[str, str]
    error: str | None = None
    dev_proxy_retries: int = 0


def local_client(base_url: str, token: str | None = None) -> httpx.Client:
    """A client of the local stack; with `token` it sends `Authorization: Bearer <token>` (an API key,
    or the runtime's origin token)."""
    return httpx.Client(
        base_url=base_url,
        headers={"Authorization": f"Bearer {token}"} if token else {},
        timeout=120,
        trust_env=False,
        transport=DevProxyRetryTransport(),
    )


def send_all(
    base_url: str, planned: Sequence[PlannedRequest], *, concurrency: int, timeout_s: float = 120
) -> tuple[list[Outcome], float]:
    """POST every planned request, at most `concurrency` at a time; outcomes in plan order + wall time."""
    return asyncio.run(_send_all(base_url, planned, concurrency, timeout_s))


async def _send_all(
    base_url: str, planned: Sequence[PlannedRequest], concurrency: int, timeout_s: float
) -> tuple[list[Outcome], float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=timeout_s, limits=limits, trust_env=False
    ) as client:

        async def send(request: PlannedRequest) -> Outcome:
            async with gate:
                started = time.perf_counter()
                for retries in range(DEV_PROXY_MAX_RETRIES + 1):
                    try:
                        response = await client.post(request.path, json=request.body, headers=request.headers)
                    except httpx.HTTPError as exc:
                        if _closed_without_answer(exc) and retries < DEV_PROXY_MAX_RETRIES:
                            continue
                        error = f"{type(exc).__name__}: {exc}"
                        return Outcome(0, time.perf_counter() - started, b"", {}, error, retries)
                    if not dropped_by_dev_proxy(response) or retries == DEV_PROXY_MAX_RETRIES:
                        break
                latency = time.perf_counter() - started
                return Outcome(
                    response.status_code, latency, response.content, dict(response.headers), None, retries
                )

        started = time.perf_counter()
        outcomes = await asyncio.gather(*(send(request) for request in planned))
        return list(outcomes), time.perf_counter() - started
