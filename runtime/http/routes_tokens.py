"""/v1/tokenize and /v1/detokenize: the model's tokens for a prompt or a conversation, and back.

A token is a run of bytes, and a byte-fallback token can hold part of a UTF-8 character, so a piece is
a string when its bytes are valid UTF-8 on their own and otherwise the array of its byte values (as
llama.cpp's server writes them). Control tokens show as their text (`<bos>`, `<start_of_turn>`), so the
pieces of a prompt add up, byte for byte, to what /v1/detokenize gives for its ids.
"""

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from runtime.engine.fingerprint import HEADER
from runtime.errors import invalid_field
from runtime.http.routes_openai import accept
from runtime.http.schemas import DetokenizeRequest, TokenizeRequest

router = APIRouter()


def _piece(data: bytes) -> str | list[int]:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return list(data)


@router.post("/v1/tokenize")
async def tokenize(request: Request):
    body, service = await accept(request, TokenizeRequest)
    if (body.prompt is None) == (body.messages is None):
        raise invalid_field("body", "must have exactly one of prompt and messages")
    if body.prompt is not None:
        tokens = await service.prompt_tokens(body.prompt)
    else:
        tokens = await service.chat_tokens(
            [message.model_dump(exclude_none=True) for message in body.messages]
        )
    # `count` is the `usage.prompt_tokens` a generation of the same prompt or messages reports.
    answer: dict = {"tokens": tokens, "count": len(tokens)}
    if body.with_pieces:
        engine = service.models.generator
        answer["pieces"] = await asyncio.to_thread(lambda: [_piece(engine.token_bytes(t)) for t in tokens])
    fingerprint = service.models.fingerprint.value
    answer |= {"model": service.models.model.name, "fingerprint": fingerprint}
    return JSONResponse(answer, headers={HEADER: fingerprint})


@router.post("/v1/detokenize")
async def detokenize(request: Request):
    body, service = await accept(request, DetokenizeRequest)
    engine = service.models.generator
    for index, token in enumerate(body.tokens):
        if token >= engine.n_vocab:
            raise invalid_field(
                f"tokens[{index}]", f"is not a token id of this model (0 to {engine.n_vocab - 1})"
            )
    data = await asyncio.to_thread(lambda: b"".join(engine.token_bytes(token) for token in body.tokens))
    fingerprint = service.models.fingerprint.value
    # Ids that end inside a UTF-8 character (or hold a lone part of one) give U+FFFD there.
    answer = {
        "text": data.decode("utf-8", errors="replace"),
        "model": service.models.model.name,
        "fingerprint": fingerprint,
    }
    return JSONResponse(answer, headers={HEADER: fingerprint})
