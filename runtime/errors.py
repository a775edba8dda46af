"""The error contract: `{"error": {"type", "message", "field"?}}`, never a traceback.

The types and their statuses are contract/errors.json, shared with the Worker (edge/src/errors.ts); the
runtime ships it as package data (runtime/contract_errors.json links to it). An error about one part of
the request names it in `field` and its message reads `<field>: <what is wrong>`.
"""

import json
import logging
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

ERROR_STATUS: dict[str, int] = {
    name: entry["status"]
    for name, entry in json.loads(files("runtime").joinpath("contract_errors.json").read_text())[
        "types"
    ].items()
}


class ApiError(Exception):
    def __init__(
        self,
        error_type: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        if field is not None:
            message = f"{field}: {message}"
        super().__init__(message)
        self.status = ERROR_STATUS[error_type]  # a type outside the vocabulary is a bug: KeyError
        self.error_type = error_type
        self.message = message
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict:
        error = {"type": self.error_type, "message": self.message}
        if self.field is not None:
            error["field"] = self.field
        return {"error": error}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def invalid_field(field: str, message: str) -> ApiError:
    return ApiError("invalid_request", message, field=field)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse:
        return error.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        # Routing is the only source of these (bodies are read by runtime.http.body, never by FastAPI).
        if error.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}"
            return ApiError("method_not_allowed", message, headers=dict(error.headers or {})).response()
        if error.status_code == 404:
            return ApiError("not_found", f"no route for {request.method} {request.url.path}").response()
        log.error("unexpected HTTP error %s on %s", error.status_code, request.url.path)
        return ApiError("internal_error", "internal error; see the runtime log").response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return ApiError("internal_error", "internal error; see the runtime log").response()
