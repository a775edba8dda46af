"""OpenAI-compatible routes, so the official `openai` client works unchanged (sampling, n, logprobs)."""

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from runtime.engine.engines import Generation, Piece
from runtime.engine.fingerprint import HEADER
from runtime.engine.grammar import JSON_OBJECT_SCHEMA
from runtime.engine.sampling import TokenLogprob
from runtime.engine.service import DecodingLimits, DecodingRequest, InferenceService, StructuredOutput
from runtime.errors import ApiError, invalid_field
from runtime.http.body import read_json
from runtime.http.disconnect import while_connected
from runtime.http.logprobs import chat_logprobs, completion_logprobs
from runtime.http.pieces import PieceRecorder
from runtime.http.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    DetokenizeRequest,
    EmbeddingsRequest,
    OpenAIGenerationFields,
    RerankRequest,
    TokenizeRequest,
)
from runtime.http.sse import event, event_stream
from runtime.http.state import runtime_state
from runtime.http.tenant import tenant_of

router = APIRouter()
Body = TypeVar(
    "Body",
    CompletionRequest,
    ChatCompletionRequest,
    EmbeddingsRequest,
    TokenizeRequest,
    DetokenizeRequest,
    RerankRequest,
)


def check_model(service: InferenceService, requested: str) -> None:
    served = service.models.model.name
    if requested != served:
        raise ApiError("model_not_found", f"{requested!r} is not served here; use {served!r}", field="model")


async def accept(request: Request, schema: type[Body]) -> tuple[Body, InferenceService]:
    """The checked body of a request and the service, once the model named in it (if any) is ours."""
    state = runtime_state(request)
    body = await read_json(request, schema, state.settings.max_body_bytes)
    service = state.require_service()
    if body.model is not None:
        check_model(service, body.model)
    return body, service


async def _structured(service: InferenceService, body: OpenAIGenerationFields) -> StructuredOutput | None:
    """The grammar `response_format` asks for: none for text, any JSON object, or the given schema."""
    response_format = body.response_format
    if response_format is None or response_format.type == "text":
        if response_format is not None and response_format.json_schema is not None:
            raise invalid_field("response_format.json_schema", "is only allowed with type json_schema")
        return None
    if response_format.type == "json_object":
        if response_format.json_schema is not None:
            raise invalid_field("response_format.json_schema", "is only allowed with type json_schema")
        return await service.structured_output(JSON_OBJECT_SCHEMA, "response_format")
    if response_format.json_schema is None:
        raise invalid_field("response_format.json_schema", "is required when type is json_schema")
    return await service.structured_output(
        response_format.json_schema.schema_, "response_format.json_schema.schema"
    )


def _usage(*results: Generation) -> dict[str, int]:
    """Usage of one answer or of n choices (the prompt is counted once, as OpenAI does)."""
    completion = sum(result.completion_tokens for result in results)
    return {
        "prompt_tokens": results[0].prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": results[0].prompt_tokens + completion,
    }


def _answer_id(prefix: str, fingerprint: str, decoding: DecodingRequest) -> str:
    """The same request gets the same id, streamed or not: a random id or a timestamp would make the
    same request give different bytes (and a cached answer could not stand in for a fresh one)."""
    what: list = [
        prefix,
        fingerprint,
        decoding.prompt_tokens,
        decoding.max_tokens,
        decoding.stops,
        decoding.seed,
    ]
    # Appended only when present, so that a greedy one-choice request keeps its id.
    if decoding.structured is not None:
        what.append(decoding.structured.schema)
    extra: dict = decoding.sampling.non_default()
    if decoding.n != 1:
        extra["n"] = decoding.n
    if decoding.logprobs is not None:
        extra["logprobs"] = decoding.logprobs
    if extra:
        what.append(extra)
    digest = hashlib.sha256(json.dumps(what, separators=(",", ":")).encode()).hexdigest()
    return f"{prefix}-{digest[:24]}"


class _Envelope:
    """The fields every object of one OpenAI response (or stream) shares. `created` is always 0: the
    answer is a function of the request, not of when it was asked (contract/schemas/common.json)."""

    def __init__(self, service: InferenceService, prefix: str, object_type: str, decoding: DecodingRequest):
        self.fingerprint = service.models.fingerprint.value
        self.fields = {
            "id": _answer_id(prefix, self.fingerprint, decoding),
            "object": object_type,
            "created": 0,
            "model": service.models.model.name,
            "system_fingerprint": self.fingerprint,
        }

    def wrap(self, **body: object) -> dict:
        return {**self.fields, **body}


def _usage_chunk(body: OpenAIGenerationFields, envelope: _Envelope) -> Callable[[dict], dict] | None:
    """The extra last chunk carrying usage, when the client asked for it with stream_options."""
    if body.stream_options and body.stream_options.include_usage:
        return lambda usage: envelope.wrap(choices=[], usage=usage)
    return None


async def _stream_events(
    stream: AsyncIterator[tuple[int, Piece | Generation]],
    piece: Callable[[int, Piece], dict],
    finish: Callable[[int, str, tuple[TokenLogprob, ...]], dict],
    usage: Callable[[dict], dict] | None,
    opening: Callable[[int], dict] | None = None,
) -> AsyncIterator[bytes]:
    """An OpenAI stream, choice after choice (runtime/engine/service.py `stream_choices`): for each, an
    optional opening chunk, one chunk per piece and the finish chunk (with the logprobs of tokens no piece
    carried: those a stop string cut off); then usage (all choices) and [DONE]."""
    if opening is not None:
        yield event(opening(0))
    results: list[Generation] = []
    current, sent = 0, 0
    async for choice, item in stream:
        if choice != current:
            current, sent = choice, 0
            if opening is not None:
                yield event(opening(choice))
        if isinstance(item, Piece):
            sent += len(item.logprobs)
            yield event(piece(choice, item))
            continue
        results.append(item)
        yield event(finish(choice, item.finish_reason, (item.logprobs or ())[sent:]))
    if usage is not None:
        yield event(usage(_usage(*results)))
    yield event("[DONE]")


@router.get("/v1/models")
async def list_models(request: Request):
    service = runtime_state(request).require_service()
    model = service.models.model
    entry = {
        "id": model.name,
        "object": "model",
        "created": int(model.path.stat().st_mtime),
        "owned_by": "steadytext-edge",
    }
    return {"object": "list", "data": [entry]}


@router.post("/v1/completions")
async def completions(request: Request):
    body, service = await accept(request, CompletionRequest)
    limits = DecodingLimits(
        body.max_tokens,
        body.stop,
        body.seed,
        structured=await _structured(service, body),
        sampling=body.sampling(),
        n=body.n,
        logprobs=body.logprobs,
    )
    decoding = await service.prompt_decoding(body.prompt[0], limits, prompt_field="prompt")
    envelope = _Envelope(service, "cmpl", "text_completion", decoding)
    tenant = tenant_of(request)
    with_logprobs = decoding.logprobs is not None

    def choice(
        text: str, finish_reason: str | None, logprobs: tuple[TokenLogprob, ...] | None, index: int = 0
    ) -> dict:
        shaped = completion_logprobs(logprobs) if with_logprobs and logprobs is not None else None
        return {"index": index, "text": text, "logprobs": shaped, "finish_reason": finish_reason}

    if body.stream:
        events = _stream_events(
            service.stream_choices(decoding, tenant),
            piece=lambda index, piece: envelope.wrap(
                choices=[choice(piece.text, None, piece.logprobs, index)]
            ),
            finish=lambda index, reason, rest: envelope.wrap(choices=[choice("", reason, rest, index)]),
            usage=_usage_chunk(body, envelope),
        )
        return event_stream(events, envelope.fingerprint)
    pieces = PieceRecorder(with_logprobs)
    results = await while_connected(request, service.generate_choices(decoding, tenant, pieces.for_choice))
    choices = [choice(r.text, r.finish_reason, r.logprobs, index) for index, r in enumerate(results)]
    answer = envelope.wrap(choices=choices, usage=_usage(*results))
    return JSONResponse(answer, headers={HEADER: envelope.fingerprint, **pieces.header(decoding.n)})


@router.post("/v1/chat/completions")
async def chat_completions(request: Request):
    body, service = await accept(request, ChatCompletionRequest)
    chosen = {
        "structured": await _structured(service, body),
        "sampling": body.sampling(),
        "n": body.n,
        "logprobs": body.logprob_count(),
    }
    if body.max_completion_tokens is not None:
        limits = DecodingLimits(
            body.max_completion_tokens, body.stop, body.seed, "max_completion_tokens", **chosen
        )
    else:
        limits = DecodingLimits(body.max_tokens, body.stop, body.seed, **chosen)
    messages = [message.model_dump(exclude_none=True) for message in body.messages]
    decoding = await service.chat_decoding(messages, limits)
    envelope = _Envelope(service, "chatcmpl", "chat.completion", decoding)
    tenant = tenant_of(request)
    with_logprobs = decoding.logprobs is not None

    def shaped(logprobs: tuple[TokenLogprob, ...] | None) -> dict | None:
        return chat_logprobs(logprobs) if with_logprobs and logprobs is not None else None

    if body.stream:
        chunk = _Envelope(service, "chatcmpl", "chat.completion.chunk", decoding)

        def delta(
            index: int, content: dict, finish_reason: str | None, logprobs: tuple | None = None
        ) -> dict:
            choice = {
                "index": index,
                "delta": content,
                "logprobs": shaped(logprobs),
                "finish_reason": finish_reason,
            }
            return chunk.wrap(choices=[choice])

        events = _stream_events(
            service.stream_choices(decoding, tenant),
            piece=lambda index, piece: delta(index, {"content": piece.text}, None, piece.logprobs),
            finish=lambda index, reason, rest: delta(index, {}, reason, rest),
            usage=_usage_chunk(body, chunk),
            opening=lambda index: delta(index, {"role": "assistant", "content": ""}, None),
        )
        return event_stream(events, chunk.fingerprint)
    pieces = PieceRecorder(with_logprobs)
    results = await while_connected(request, service.generate_choices(decoding, tenant, pieces.for_choice))
    choices = [
        {
            "index": index,
            "message": {"role": "assistant", "content": result.text},
            "logprobs": shaped(result.logprobs),
            "finish_reason": result.finish_reason,
        }
        for index, result in enumerate(results)
    ]
    answer = envelope.wrap(choices=choices, usage=_usage(*results))
    return JSONResponse(answer, headers={HEADER: envelope.fingerprint, **pieces.header(decoding.n)})


@router.post("/v1/embeddings")
async def embeddings(request: Request):
    body, service = await accept(request, EmbeddingsRequest)
    token_count = await service.count_embedding_tokens(body.input, "input")
    vectors = await while_connected(request, service.embed(body.input, token_count, tenant_of(request)))

    def encode(vector) -> list[float] | str:
        if body.encoding_format == "base64":  # little-endian float32, what the openai client decodes
            return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
        return vector.tolist()

    fingerprint = service.models.fingerprint.value
    answer = {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
        "model": service.models.model.name,
        "system_fingerprint": fingerprint,
        "usage": {"prompt_tokens": token_count, "total_tokens": token_count},
    }
    return JSONResponse(answer, headers={HEADER: fingerprint})
