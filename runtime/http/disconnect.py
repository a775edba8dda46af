"""Abandoning non-streamed work when its client goes away (streams notice through the response itself)."""

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from fastapi import Request

from runtime.errors import ApiError

Result = TypeVar("Result")

_POLL_SECONDS = 0.1


async def while_connected(request: Request, work: Awaitable[Result]) -> Result:
    """Await `work`, cancelling it if the client disconnects first (e.g. the edge's origin timeout).

    Cancelling the await cancels the queued job, so the model thread moves on at the next token.
    """
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_POLL_SECONDS)
            if done:
                return task.result()
            if await request.is_disconnected():
                # Nobody reads this answer; the status makes abandoned requests visible in the metrics.
                raise ApiError("client_disconnected", "the client closed the connection")
    finally:
        task.cancel()
