"""Reading a JSON body into a request model, with every failure mapped to a 4xx naming the problem."""

import json
import re
from typing import TypeVar

import numpy as np
from fastapi import Request
from pydantic import BaseModel, ValidationError

from runtime.errors import ApiError, invalid_field

Model = TypeVar("Model", bound=BaseModel)

# Arrays and objects nested deeper than this are refused before parsing: Python's parser recurses once
# per level (a 100k-deep body is a RecursionError), and no request of ours needs more than a few levels.
# The Worker refuses the same depth (edge/src/http.ts). The body itself is level 1.
MAX_JSON_DEPTH = 32
# A JSON string from its opening quote to its closing one, or to the end of a broken body; possessive
# quantifiers keep the scan linear whatever mix of quotes and backslashes a body holds.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_A_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


async def _read_limited(request: Request, max_bytes: int) -> bytes:
    too_large = ApiError(413, "request_too_large", f"request body exceeds {max_bytes} bytes")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


def _field_of(location: tuple) -> str:
    return ".".join(str(part) for part in location) or "body"


def nesting_depth(utf8: bytes) -> int:
    """How deeply arrays and objects nest in a UTF-8 JSON text, found without parsing it.

    Strings are cut out first (brackets inside them do not count); in UTF-8 every byte below 0x80 is
    the ASCII character it looks like, so the brackets left are the structure's. The running sum of
    +1 per opening and -1 per closing bracket peaks at the depth. For a malformed body this is at least
    the depth a parser reaches before it stops at the first error.
    """
    structure = _JSON_STRING.sub(b"", utf8).translate(_BRACKET_STEP, _NOT_A_BRACKET)
    if not structure:
        return 0
    return max(0, int(np.cumsum(np.frombuffer(structure, dtype=np.int8), dtype=np.int64).max()))


def parse_json(raw: bytes) -> object:
    """The JSON value of a request body, or a 400 naming what is wrong with it."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ApiError(400, "invalid_json", f"the body is not UTF-8: {error}") from None
    # Fewer opening brackets than the limit cannot nest past it: most bodies skip the scan.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and nesting_depth(raw) > MAX_JSON_DEPTH:
        raise ApiError(
            400, "invalid_json", f"the JSON body nests arrays/objects deeper than {MAX_JSON_DEPTH} levels"
        )
    try:
        return json.loads(text)
    except ValueError as error:  # also a number too long to convert (Python's 4300-digit limit)
        raise ApiError(400, "invalid_json", f"malformed JSON body: {error}") from None


async def read_json(request: Request, model: type[Model], max_bytes: int) -> Model:
    data = parse_json(await _read_limited(request, max_bytes))
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the JSON body must be an object")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        field = _field_of(first["loc"])
        if first["type"] == "extra_forbidden":
            raise invalid_field(field, "unknown field") from None
        raise invalid_field(field, first["msg"]) from None
