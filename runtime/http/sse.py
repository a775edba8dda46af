"""Server-sent events: framing, and the response that carries them."""

import json
import logging
from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse

from runtime.engine.fingerprint import HEADER
from runtime.errors import ApiError

log = logging.getLogger(__name__)


def compact_json(data: object) -> str:
    """The same serialisation JSONResponse uses, so streamed and plain answers match byte for byte."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def event(data: object) -> bytes:
    payload = data if isinstance(data, str) else compact_json(data)
    return f"data: {payload}\n\n".encode()


async def _guarded(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """After the first byte the status is sent: a failure can only be reported as a last event."""
    try:
        async for chunk in events:
            yield chunk
    except ApiError as error:  # e.g. structured output that ran out of tokens (runtime/engine/service.py)
        yield event(error.body())
    except Exception:
        log.exception("stream failed")
        yield event(
            {"error": {"type": "internal_error", "message": "generation failed; see the runtime log"}}
        )


def event_stream(events: AsyncIterator[bytes], fingerprint: str) -> StreamingResponse:
    return StreamingResponse(
        _guarded(events),
        media_type="text/event-stream",
        headers={HEADER: fingerprint, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
