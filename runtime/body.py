"""Reading a JSON body into a request model, with every failure mapped to a 4xx naming the problem."""

import json
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from runtime.errors import ApiError, invalid_field

Model = TypeVar("Model", bound=BaseModel)


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


async def read_json(request: Request, model: type[Model], max_bytes: int) -> Model:
    raw = await _read_limited(request, max_bytes)
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, "invalid_json", f"malformed JSON body: {error}") from None
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
