"""The native API the edge Worker calls: /v1/generate (optionally streamed) and /v1/embed."""

from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from runtime.engine.engines import Generation, Piece
from runtime.engine.fingerprint import HEADER
from runtime.engine.service import DecodingLimits
from runtime.http.body import read_json
from runtime.http.disconnect import while_connected
from runtime.http.pieces import PieceRecorder
from runtime.http.schemas import EmbedRequest, GenerateRequest
from runtime.http.sse import event, event_stream
from runtime.http.state import runtime_state
from runtime.http.tenant import tenant_of

router = APIRouter()


def usage(result: Generation) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens}


@router.post("/v1/generate")
async def generate(request: Request):
    state = runtime_state(request)
    body = await read_json(request, GenerateRequest, state.settings.max_body_bytes)
    service = state.require_service()
    structured = None
    if body.json_schema is not None:
        structured = await service.structured_output(body.json_schema, "json_schema")
    decoding = await service.prompt_decoding(
        body.prompt,
        DecodingLimits(
            body.max_tokens, body.stop, body.seed, structured=structured, sampling=body.sampling()
        ),
    )
    model, fingerprint = service.models.model.name, service.models.fingerprint.value
    tenant = tenant_of(request)
    if body.stream:
        events = _generate_events(service.stream(decoding, tenant), model, fingerprint)
        return event_stream(events, fingerprint)
    pieces = PieceRecorder()
    result = await while_connected(request, service.generate(decoding, tenant, pieces))
    answer = {
        "text": result.text,
        "finish_reason": result.finish_reason,
        "usage": usage(result),
        "model": model,
        "fingerprint": fingerprint,
    }
    return JSONResponse(answer, headers={HEADER: fingerprint, **pieces.header()})


async def _generate_events(stream: AsyncIterator, model: str, fingerprint: str) -> AsyncIterator[bytes]:
    async for item in stream:
        if isinstance(item, Piece):
            yield event({"token": item.text})
            continue
        yield event(
            {
                "done": True,
                "text": item.text,
                "finish_reason": item.finish_reason,
                "usage": usage(item),
                "model": model,
                "fingerprint": fingerprint,
            }
        )


@router.post("/v1/embed")
async def embed(request: Request):
    state = runtime_state(request)
    body = await read_json(request, EmbedRequest, state.settings.max_body_bytes)
    service = state.require_service()
    token_count = await service.count_embedding_tokens(body.input, "input")
    vectors = await while_connected(request, service.embed(body.input, token_count, tenant_of(request)))
    fingerprint = service.models.fingerprint.value
    answer = {
        "embeddings": [vector.tolist() for vector in vectors],
        "dim": service.models.embedder.dim,
        "model": service.models.model.name,
        "fingerprint": fingerprint,
    }
    return JSONResponse(answer, headers={HEADER: fingerprint})
