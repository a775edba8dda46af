"""Every kind of bad input answers a 4xx JSON error naming the problem, and the runtime keeps serving."""

import logging
from collections.abc import Iterator

import pytest

from runtime.http.body import nesting_depth

MODEL = "gemma-3-270m-q4_k_m"

# (route, JSON body, status, field named in the error)
BAD_BODIES = [
    ("/v1/generate", {}, 400, "prompt"),
    ("/v1/generate", {"prompt": ""}, 400, "prompt"),
    ("/v1/generate", {"prompt": 42}, 400, "prompt"),
    ("/v1/generate", {"prompt": ["a", "b"]}, 400, "prompt"),
    ("/v1/generate", {"prompt": "hi", "max_tokens": 0}, 400, "max_tokens"),
    ("/v1/generate", {"prompt": "hi", "max_tokens": -3}, 400, "max_tokens"),
    ("/v1/generate", {"prompt": "hi", "max_tokens": 257}, 400, "max_tokens"),
    ("/v1/generate", {"prompt": "hi", "max_tokens": "8"}, 400, "max_tokens"),
    ("/v1/generate", {"prompt": "hi", "max_tokens": 8.0}, 400, "max_tokens"),
    ("/v1/generate", {"prompt": "hi", "max_tokens": True}, 400, "max_tokens"),
    ("/v1/generate", {"prompt": "hi", "max_tokens": 10**30}, 400, "max_tokens"),
    ("/v1/generate", {"prompt": "hi", "seed": -1}, 400, "seed"),
    ("/v1/generate", {"prompt": "hi", "seed": 2**32}, 400, "seed"),
    ("/v1/generate", {"prompt": "hi", "stop": 5}, 400, "stop"),
    ("/v1/generate", {"prompt": "hi", "stop": [""]}, 400, "stop[0]"),
    ("/v1/generate", {"prompt": "hi", "stop": ["x"] * 17}, 400, "stop"),
    ("/v1/generate", {"prompt": "hi", "stream": "yes"}, 400, "stream"),
    ("/v1/generate", {"prompt": "hi", "temperature": 3}, 400, "temperature"),
    ("/v1/generate", {"prompt": "hi", "temperature": -0.1}, 400, "temperature"),
    ("/v1/generate", {"prompt": "hi", "temperature": "hot"}, 400, "temperature"),
    ("/v1/generate", {"prompt": "hi", "top_p": 0}, 400, "top_p"),
    ("/v1/generate", {"prompt": "hi", "top_p": 1.5}, 400, "top_p"),
    ("/v1/generate", {"prompt": "hi", "top_k": -1}, 400, "top_k"),
    ("/v1/generate", {"prompt": "hi", "top_k": 2.5}, 400, "top_k"),
    ("/v1/generate", {"prompt": "hi", "min_p": 1.1}, 400, "min_p"),
    ("/v1/generate", {"prompt": "hi", "repeat_penalty": 0}, 400, "repeat_penalty"),
    ("/v1/generate", {"prompt": "hi", "presence_penalty": 2.5}, 400, "presence_penalty"),
    ("/v1/generate", {"prompt": "hi", "frequency_penalty": -2.5}, 400, "frequency_penalty"),
    ("/v1/generate", {"prompt": "hi", "n": 2}, 400, "n"),
    ("/v1/generate", {"prompt": "hi", "logprobs": 1}, 400, "logprobs"),
    ("/v1/embed", {}, 400, "input"),
    ("/v1/embed", {"input": ""}, 400, "input[0]"),
    ("/v1/embed", {"input": []}, 400, "input"),
    ("/v1/embed", {"input": ["ok", 3]}, 400, "input[1]"),
    ("/v1/embed", {"input": ["x"] * 257}, 400, "input"),
    ("/v1/completions", {"model": MODEL}, 400, "prompt"),
    ("/v1/completions", {"model": "gpt-4", "prompt": "hi"}, 404, "model"),
    ("/v1/completions", {"model": MODEL, "prompt": "hi", "temperature": 3}, 400, "temperature"),
    ("/v1/completions", {"model": MODEL, "prompt": "hi", "n": 0}, 400, "n"),
    ("/v1/completions", {"model": MODEL, "prompt": "hi", "n": 5}, 400, "n"),
    ("/v1/completions", {"model": MODEL, "prompt": "hi", "logprobs": 6}, 400, "logprobs"),
    ("/v1/completions", {"model": MODEL, "prompt": "hi", "logprobs": True}, 400, "logprobs"),
    ("/v1/completions", {"model": MODEL, "prompt": "hi", "top_logprobs": 2}, 400, "top_logprobs"),
    ("/v1/completions", {"model": MODEL, "prompt": ["a", "b"]}, 400, "prompt"),
    ("/v1/chat/completions", {"model": MODEL, "messages": []}, 400, "messages"),
    (
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "robot", "content": "x"}]},
        400,
        "messages[0].role",
    ),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user"}]}, 400, "messages[0].content"),
    (
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 999},
        400,
        "max_completion_tokens",
    ),
    (
        "/v1/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "x"}],
            "logprobs": True,
            "top_logprobs": 21,
        },
        400,
        "top_logprobs",
    ),
    (
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "top_logprobs": 2},
        400,
        "top_logprobs",
    ),
    (
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "logprobs": 3},
        400,
        "logprobs",
    ),
    (
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "n": 5},
        400,
        "n",
    ),
    ("/v1/embeddings", {"model": MODEL, "input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
]


@pytest.mark.parametrize(("route", "body", "status", "field"), BAD_BODIES)
def test_bad_body_names_the_field(client, route, body, status, field):
    response = client.post(route, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"] and error["type"]


@pytest.mark.parametrize(
    "raw",
    [
        b"{not json",
        b'{"prompt": "hi",}',
        b"",
        b"\xff\xfe\x00",
        b'"just a string"',
        b"[1, 2]",
        b"null",
        # Python's json module reads these words as numbers; they are not JSON, and the Worker refuses them.
        b'{"prompt": "hi", "json_schema": {"const": NaN}}',
        b'{"prompt": "hi", "json_schema": {"enum": [Infinity]}}',
    ],
    ids=["broken", "trailing-comma", "empty", "not-utf8", "string", "array", "null", "NaN", "Infinity"],
)
def test_malformed_json_is_a_400(client, raw):
    response = client.post("/v1/generate", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_json"


def test_body_over_the_size_limit_is_a_413(client):
    response = client.post("/v1/generate", json={"prompt": "a" * 1_100_000})
    assert response.status_code == 413
    assert "bytes" in response.json()["error"]["message"]


def test_prompt_longer_than_the_context_window(client):
    response = client.post("/v1/generate", json={"prompt": "word " * 2000, "max_tokens": 4})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "prompt" and "1024" in error["message"]


def test_embedding_input_longer_than_the_context_window(client):
    response = client.post("/v1/embed", json={"input": ["short", "word " * 2000]})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "input[1]"


def test_unknown_route_and_wrong_method_are_json_errors(client):
    missing = client.get("/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    wrong = client.get("/v1/generate")
    assert wrong.status_code == 405 and wrong.json()["error"]["type"] == "method_not_allowed"


def test_still_serving_after_the_bad_inputs(client):
    assert client.post("/v1/generate", json={"prompt": "hi", "max_tokens": 2}).status_code == 200


@pytest.fixture()
def logged(caplog) -> Iterator[list[logging.LogRecord]]:
    """Every record the runtime and uvicorn log meanwhile (uvicorn's own logger does not propagate)."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    loggers = [logging.getLogger(), logging.getLogger("uvicorn")]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield records
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


def nested(depth: int, innermost: str = '"x"') -> str:
    return "[" * depth + innermost + "]" * depth


# Bodies nested deeper than 32 levels (the body itself is level 1), wherever the nesting is.
TOO_DEEP = {
    "33 levels in stop": f'{{"prompt": "hi", "stop": {nested(32)}}}',
    "objects in an unknown field": '{"prompt": "hi", "extra": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}",
    "100k levels": f'{{"prompt": "hi", "stop": {nested(100_000)}}}',
    "100k unclosed": '{"prompt": "hi", "stop": ' + "[" * 100_000,
    "a bare 100k-deep array": nested(100_000, "1"),
}


@pytest.mark.parametrize("route", ["/v1/generate", "/v1/chat/completions", "/v1/embeddings"])
@pytest.mark.parametrize("raw", TOO_DEEP.values(), ids=TOO_DEEP.keys())
def test_deeply_nested_json_is_a_400_naming_the_limit(client, logged, route, raw):
    response = client.post(route, content=raw.encode(), headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text[:300]
    error = response.json()["error"]
    assert error["type"] == "invalid_json" and "32 levels" in error["message"]
    assert [record for record in logged if record.exc_info or record.levelno >= logging.ERROR] == []


def test_nesting_up_to_the_limit_reaches_validation(client):
    response = client.post("/v1/generate", content=f'{{"prompt": "hi", "stop": {nested(31)}}}'.encode())
    assert response.status_code == 400
    assert response.json()["error"]["field"].startswith("stop")  # refused by the schema, not the depth


def test_brackets_inside_strings_do_not_count(client):
    prompt = "[{" * 500 + ' \\" ' + "]}" * 500
    response = client.post("/v1/generate", content=f'{{"prompt": "{prompt}", "max_tokens": 1}}'.encode())
    assert response.status_code == 200, response.text[:300]


def test_a_number_too_long_to_convert_is_a_400(client, logged):
    response = client.post("/v1/generate", content=b'{"prompt": "hi", "max_tokens": ' + b"9" * 5000 + b"}")
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_json"
    assert [record for record in logged if record.exc_info or record.levelno >= logging.ERROR] == []


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b"1", 0),
        (b"{}", 1),
        (b'{"a": [1, [2, {"b": null}]]}', 4),
        (b'{"a": "[[[\\"[[{{"}', 1),  # brackets and an escaped quote inside a string
        (b'["\\\\", [[]]]', 3),  # an escaped backslash ends before the closing quote
        (b"[" * 100_000, 100_000),
        (b'["unterminated [[[[', 1),
        (b"]]][[", 0),
    ],
)
def test_nesting_depth_is_measured_without_parsing(raw, depth):
    assert nesting_depth(raw) == depth


def test_fastapi_never_validates_a_request_itself():
    """Every route takes the bare Request and reads its body through runtime.http.body, so FastAPI has no
    parameter to validate and never raises RequestValidationError: bad input always goes through the
    runtime's own messages (which is why the app installs no handler for it)."""
    from runtime.config.settings import RuntimeSettings
    from runtime.http.app import create_app

    # The OpenAPI document lists exactly what FastAPI would parse and validate for each operation.
    paths = create_app(RuntimeSettings(), load=lambda: None).openapi()["paths"]
    assert {"/v1/generate", "/v1/chat/completions", "/v1/embeddings", "/v1/status"} <= set(paths)
    for path, operations in paths.items():
        for method, operation in operations.items():
            validated = {key: operation[key] for key in ("parameters", "requestBody") if key in operation}
            assert validated == {}, f"FastAPI validates {method.upper()} {path}: {validated}"
