"""Reading a JSON body into a request model, with every failure mapped to a 4xx naming the problem."""

import json
import re
from typing import TypeVar, get_args

import numpy as np
from fastapi import Request
from pydantic import BaseModel, ValidationError

from runtime.errors import ApiError, invalid_field

Model = TypeVar("Model", bound=BaseModel)

# Arrays and objects nested deeper than this are refused before parsing: Python's parser recurses once
# per level (a 100k-deep body is a RecursionError), and no request of ours needs more than a few levels.
# The Worker refuses the same depth (edge/src/admission/http.ts). The body itself is level 1.
MAX_JSON_DEPTH = 32
# A JSON string from its opening quote to its closing one, or to the end of a broken body; possessive
# quantifiers keep the scan linear whatever mix of quotes and backslashes a body holds.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_A_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 / -1 as signed bytes


async def _read_limited(request: Request, max_bytes: int) -> bytes:
    too_large = ApiError("request_too_large", f"exceeds {max_bytes} bytes", field="body")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > max_bytes:
            raise too_large
    return bytes(body)


def field_path(location: tuple) -> str:
    """A pydantic error location as the Worker writes fields: `messages[0].role`, `stop[1]`."""
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else str(part)
    return path or "body"


def _model_within(annotation: object) -> type[BaseModel] | None:
    """The request model inside a field's type (`StreamOptions | None`, `list[ChatMessage]`), if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        if found := _model_within(argument):
            return found
    return None


def _model_at(model: type[BaseModel], location: tuple) -> type[BaseModel] | None:
    """The model that holds the field at `location` (list indexes are stepped over)."""
    for part in location:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        found = field and _model_within(field.annotation)
        if not found:
            return None
        model = found
    return model


# The wording both layers use for the same problem (the Worker's validator says the same things).
def _problem(error: dict, model: type[BaseModel]) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        holder = _model_at(model, error["loc"][:-1])
        # Names as sent (a field's alias, e.g. `schema`), as the Worker lists them.
        names = [field.alias or name for name, field in holder.model_fields.items()] if holder else []
        return f"is not a known field (allowed: {', '.join(names)})" if holder else "is not a known field"
    if kind == "string_type":
        return "must be a string"
    if kind == "string_too_short":
        return (
            "must not be empty"
            if ctx.get("min_length") == 1
            else f"must be at least {ctx['min_length']} characters"
        )
    if kind == "string_too_long":
        return f"must be at most {ctx['max_length']} characters"
    if kind in ("int_type", "int_from_float", "int_parsing", "int_parsing_size"):
        return "must be an integer"
    if kind in ("float_type", "float_parsing"):
        return "must be a number"
    if kind == "bool_type":
        return "must be a boolean"
    if kind == "greater_than_equal":
        return f"must be at least {ctx['ge']}"
    if kind == "greater_than":
        return f"must be more than {ctx['gt']}"
    if kind == "less_than_equal":
        return f"must be at most {ctx['le']}"
    if kind == "less_than":
        return f"must be less than {ctx['lt']}"
    if kind == "list_type":
        return "must be a string or an array of strings"  # every list field also takes one string
    if kind == "too_short":
        return "must not be an empty array"
    if kind == "too_long":
        return f"must have at most {ctx['max_length']} items"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be an object"
    if kind == "string_pattern_mismatch":
        return f"must match {ctx['pattern']}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}"
    return error["msg"]


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


def _not_json(word: str) -> object:
    """NaN, Infinity and -Infinity, which Python's json module reads as numbers and JSON has no word for
    (the Worker's parser refuses them too); a schema's `const: NaN` would otherwise reach the grammar."""
    raise ValueError(f"{word} is not JSON")


def parse_json(raw: bytes) -> object:
    """The JSON value of a request body, or a 400 naming what is wrong with it."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError("invalid_json", "is not valid UTF-8", field="body") from None
    if text.strip() == "":
        raise ApiError("invalid_json", "is empty", field="body")
    # Fewer opening brackets than the limit cannot nest past it: most bodies skip the scan.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and nesting_depth(raw) > MAX_JSON_DEPTH:
        message = f"nests arrays/objects deeper than the limit of {MAX_JSON_DEPTH} levels"
        raise ApiError("invalid_json", message, field="body")
    try:
        return json.loads(text, parse_constant=_not_json)
    except ValueError:  # also a number too long to convert (Python's 4300-digit limit)
        # No parser detail: the Worker's parser words it differently, and both layers answer alike.
        raise ApiError("invalid_json", "is not valid JSON", field="body") from None


async def read_json(request: Request, model: type[Model], max_bytes: int) -> Model:
    data = parse_json(await _read_limited(request, max_bytes))
    if not isinstance(data, dict):
        raise ApiError("invalid_json", "must be a JSON object", field="body")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise invalid_field(field_path(first["loc"]), _problem(first, model)) from None
