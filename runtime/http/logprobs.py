"""Token log-probabilities in OpenAI's two shapes: the legacy completions one and the chat one.

The Worker re-renders these objects from a stored answer when it replays a stream (JSON.parse, then
JSON.stringify; edge/src/cache/replay.ts), so they are built to come out of that byte for byte: numbers
are rounded as runtime/engine/sampling.py `rounded_logprob` says, and the completions shape's
`{token: logprob}` objects keep their keys in the order JavaScript gives them back (array-index keys first,
ascending, then the rest as inserted).
"""

import re

from runtime.engine.sampling import TokenLogprob, rounded_logprob

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")
_MAX_ARRAY_INDEX = 2**32 - 2


def _text(piece: bytes) -> str:
    return piece.decode("utf-8", errors="replace")


def _is_array_index(key: str) -> bool:
    return _ARRAY_INDEX.fullmatch(key) is not None and int(key) <= _MAX_ARRAY_INDEX


def js_key_order(pairs: list[tuple[str, float | int]]) -> dict[str, float | int]:
    """A dict of `pairs` (the first of equal keys wins) in the key order a JavaScript object has."""
    first: dict[str, float | int] = {}
    for key, value in pairs:
        first.setdefault(key, value)
    indexes = sorted((key for key in first if _is_array_index(key)), key=int)
    return {key: first[key] for key in indexes + [key for key in first if not _is_array_index(key)]}


def completion_logprobs(entries: tuple[TokenLogprob, ...]) -> dict:
    """`choices[].logprobs` of /v1/completions: parallel lists, `top_logprobs` as {token: logprob}."""
    return {
        "tokens": [_text(entry.piece) for entry in entries],
        "token_logprobs": [rounded_logprob(entry.logprob) for entry in entries],
        "top_logprobs": [
            js_key_order([(_text(piece), rounded_logprob(value)) for _, piece, value in entry.top])
            for entry in entries
        ],
        "text_offset": [entry.text_offset for entry in entries],
    }


def chat_logprobs(entries: tuple[TokenLogprob, ...]) -> dict:
    """`choices[].logprobs` of /v1/chat/completions: one object per token, with its UTF-8 bytes."""

    def token(piece: bytes, value: float) -> dict:
        return {"token": _text(piece), "logprob": rounded_logprob(value), "bytes": list(piece)}

    return {
        "content": [
            {
                **token(entry.piece, entry.logprob),
                "top_logprobs": [token(piece, value) for _, piece, value in entry.top],
            }
            for entry in entries
        ]
    }
