"""Hostile and broken requests through the real path: always a JSON 4xx, never a 5xx, and the Worker keeps
serving afterwards."""

import json

import pytest

pytestmark = pytest.mark.e2e

# ~190 KB: three times the Worker's MAX_BODY_BYTES, refused from its Content-Length before it is read. Not
# megabytes: a client still sending when `wrangler dev` answers and closes can lose the answer to the reset
# (seen under load); Cloudflare's front end, not the Worker, holds the client's connection when deployed.
HUGE_PROMPT = "lorem ipsum " * 16_000
JSON_DEPTH_LIMIT = 32  # the Worker's MAX_JSON_DEPTH (edge/src/admission/http.ts)
DEEP = 30_000  # deep enough to overflow a recursive walk; fits the Worker's default body limit


def nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


# (name, method, path, raw body, content type)
BROKEN_REQUESTS = [
    ("malformed json", "POST", "/v1/generate", b'{"prompt": "hi"', "application/json"),
    ("empty body", "POST", "/v1/generate", b"", "application/json"),
    ("json array", "POST", "/v1/generate", b'["hi"]', "application/json"),
    ("json string", "POST", "/v1/generate", b'"hi"', "application/json"),
    ("not json content type", "POST", "/v1/generate", b"prompt=hi", "application/x-www-form-urlencoded"),
    ("invalid utf-8", "POST", "/v1/generate", b'{"prompt": "\xff\xfe\xfd"}', "application/json"),
    ("missing prompt", "POST", "/v1/generate", b"{}", "application/json"),
    ("empty prompt", "POST", "/v1/generate", b'{"prompt": ""}', "application/json"),
    ("prompt is a number", "POST", "/v1/generate", b'{"prompt": 42}', "application/json"),
    ("prompt is null", "POST", "/v1/generate", b'{"prompt": null}', "application/json"),
    ("prompt is a list", "POST", "/v1/generate", b'{"prompt": ["a", "b"]}', "application/json"),
    (
        "max_tokens negative",
        "POST",
        "/v1/generate",
        b'{"prompt": "hi", "max_tokens": -1}',
        "application/json",
    ),
    ("max_tokens zero", "POST", "/v1/generate", b'{"prompt": "hi", "max_tokens": 0}', "application/json"),
    ("max_tokens huge", "POST", "/v1/generate", b'{"prompt": "hi", "max_tokens": 1e12}', "application/json"),
    (
        "max_tokens string",
        "POST",
        "/v1/generate",
        b'{"prompt": "hi", "max_tokens": "ten"}',
        "application/json",
    ),
    (
        "max_tokens fraction",
        "POST",
        "/v1/generate",
        b'{"prompt": "hi", "max_tokens": 1.5}',
        "application/json",
    ),
    ("seed string", "POST", "/v1/generate", b'{"prompt": "hi", "seed": "x"}', "application/json"),
    ("stop number", "POST", "/v1/generate", b'{"prompt": "hi", "stop": 5}', "application/json"),
    ("huge body", "POST", "/v1/generate", json.dumps({"prompt": HUGE_PROMPT}).encode(), "application/json"),
    ("embed input number", "POST", "/v1/embed", b'{"input": 5}', "application/json"),
    ("embed input list of numbers", "POST", "/v1/embed", b'{"input": [1, 2]}', "application/json"),
    ("embed empty list", "POST", "/v1/embed", b'{"input": []}', "application/json"),
    ("embed missing input", "POST", "/v1/embed", b'{"text": "hi"}', "application/json"),
    ("GET on generate", "GET", "/v1/generate", None, None),
    ("PUT on generate", "PUT", "/v1/generate", b'{"prompt": "hi"}', "application/json"),
    ("DELETE on embed", "DELETE", "/v1/embed", None, None),
    ("unknown route", "POST", "/v1/does-not-exist", b'{"prompt": "hi"}', "application/json"),
    (
        "deeply nested field",
        "POST",
        "/v1/generate",
        b'{"prompt": "hi", "stop": ' + nested(DEEP) + b"}",
        "application/json",
    ),
    (
        "deeply nested unknown openai field",
        "POST",
        "/v1/completions",
        b'{"model": "m", "prompt": "hi", "extra": ' + nested(DEEP) + b"}",
        "application/json",
    ),
    ("deeply nested body", "POST", "/v1/chat/completions", nested(DEEP), "application/json"),
    (
        "unknown openai field",
        "POST",
        "/v1/completions",
        b'{"prompt": "hi", "echo": true}',
        "application/json",
    ),
    (
        "stream_options with an unknown key",
        "POST",
        "/v1/chat/completions",
        b'{"messages": [{"role": "user", "content": "hi"}], "stream_options": {"x": true}}',
        "application/json",
    ),
]

# Valid JSON with unusual text: the Worker may answer or refuse, but as JSON and never with a 5xx.
ODD_UNICODE_PROMPTS = {
    "lone surrogate": '{"prompt": "\\ud800 alone", "max_tokens": 1}',
    "nul character": '{"prompt": "a\\u0000b", "max_tokens": 1}',
    "right-to-left override": '{"prompt": "\u202egnirts desrever", "max_tokens": 1}',
    "emoji zwj sequence": '{"prompt": "\U0001f469\u200d\U0001f4bb\u200d\U0001f52c", "max_tokens": 1}',
    "combining marks": '{"prompt": "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f", "max_tokens": 1}',
    "byte order mark": '{"prompt": "\ufeffhello", "max_tokens": 1}',
}


def assert_json_error(response, expected_range):
    assert response.status_code in expected_range, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    return response.json()


@pytest.mark.parametrize(
    ("method", "path", "raw", "content_type"),
    [case[1:] for case in BROKEN_REQUESTS],
    ids=[case[0] for case in BROKEN_REQUESTS],
)
def test_broken_request_gets_a_json_4xx(worker, method, path, raw, content_type):
    headers = {"Content-Type": content_type} if content_type else {}
    response = worker.request(method, path, content=raw, headers=headers)

    body = assert_json_error(response, range(400, 500))
    assert "error" in body


@pytest.mark.parametrize("raw", list(ODD_UNICODE_PROMPTS.values()), ids=list(ODD_UNICODE_PROMPTS))
def test_odd_unicode_never_breaks_the_path(worker, raw):
    response = worker.post("/v1/generate", content=raw.encode(), headers={"Content-Type": "application/json"})

    body = assert_json_error(response, [200, *range(400, 500)])
    assert ("text" in body) if response.status_code == 200 else ("error" in body)


# The odd strings that break encoders (a lone surrogate cannot be UTF-8; NUL ends a C string), in every
# text field of every route: some reach the tokenizer, the chat template or the embedding path.
ODD_TEXTS = {"lone surrogate": "\\ud800 alone", "lone low surrogate": "\\udfff", "nul": "a\\u0000b"}
TEXT_FIELDS = {
    "generate stop": ("/v1/generate", '{"prompt": "hi", "max_tokens": 1, "stop": ["%s"]}'),
    "embed input": ("/v1/embed", '{"input": "%s"}'),
    "embed input list": ("/v1/embed", '{"input": ["ok", "%s"]}'),
    "completions prompt": ("/v1/completions", '{"model": "%%s", "prompt": "%s", "max_tokens": 1}'),
    "completions user": (
        "/v1/completions",
        '{"model": "%%s", "prompt": "hi", "max_tokens": 1, "user": "%s"}',
    ),
    "completions model": ("/v1/completions", '{"model": "%s", "prompt": "hi", "max_tokens": 1}'),
    "chat content": (
        "/v1/chat/completions",
        '{"model": "%%s", "max_tokens": 1, "messages": [{"role": "user", "content": "%s"}]}',
    ),
    "chat name": (
        "/v1/chat/completions",
        '{"model": "%%s", "max_tokens": 1, "messages": [{"role": "user", "content": "hi", "name": "%s"}]}',
    ),
    "chat role": (
        "/v1/chat/completions",
        '{"model": "%%s", "max_tokens": 1, "messages": [{"role": "%s", "content": "hi"}]}',
    ),
    "embeddings input": ("/v1/embeddings", '{"model": "%%s", "input": ["%s"]}'),
}


@pytest.mark.parametrize("odd", list(ODD_TEXTS), ids=list(ODD_TEXTS))
@pytest.mark.parametrize("field", list(TEXT_FIELDS), ids=list(TEXT_FIELDS))
def test_odd_text_in_any_field_is_an_answer_or_a_4xx(worker, field, odd):
    path, template = TEXT_FIELDS[field]
    raw = template % ODD_TEXTS[odd]
    if "%s" in raw:
        raw = raw % worker.get("/v1/models").json()["data"][0]["id"]
    response = worker.post(path, content=raw.encode(), headers={"Content-Type": "application/json"})

    body = assert_json_error(response, [200, *range(400, 500)])
    assert "error" in body if response.status_code != 200 else "error" not in body


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        ("/v1/generate", b'{"prompt": "hi", "stop": ' + nested(DEEP) + b"}"),
        ("/v1/completions", b'{"model": "m", "prompt": "hi", "extra": ' + nested(DEEP) + b"}"),
        ("/v1/embeddings", b'{"input": "hi", "x": ' + b'{"a": ' * 33 + b"1" + b"}" * 33 + b"}"),
    ],
    ids=["native field", "unknown openai field", "objects just past the limit"],
)
def test_deep_nesting_is_a_400_naming_the_limit_and_never_reaches_the_runtime(
    worker, inference_count, path, raw
):
    runs_before = inference_count("generate") + inference_count("embed")

    response = worker.post(path, content=raw, headers={"Content-Type": "application/json"})

    error = assert_json_error(response, [400])["error"]
    assert error["type"] == "invalid_json" and str(JSON_DEPTH_LIMIT) in error["message"], error
    assert inference_count("generate") + inference_count("embed") == runs_before


def test_worker_still_serves_after_the_corpus(worker, unique_prompt):
    for _, method, path, raw, content_type in BROKEN_REQUESTS:
        worker.request(
            method, path, content=raw, headers={"Content-Type": content_type} if content_type else {}
        )

    response = worker.post("/v1/generate", json={"prompt": unique_prompt("resilience"), "max_tokens": 4})

    assert response.status_code == 200, response.text
    assert response.json()["text"]


DEEP_BODIES = {
    "33 levels": '{"prompt": "hi", "stop": ' + "[" * 32 + '"x"' + "]" * 32 + "}",
    "100k levels": '{"prompt": "hi", "stop": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "100k unclosed": '{"prompt": "hi", "extra": ' + '{"a": ' * 100_000,
}


@pytest.mark.parametrize("raw", DEEP_BODIES.values(), ids=DEEP_BODIES.keys())
def test_the_runtime_refuses_deep_json_without_a_traceback(stack, runtime, raw):
    log = stack.runtime.log_path
    logged_before = log.stat().st_size

    response = runtime.post(
        "/v1/generate", content=raw.encode(), headers={"Content-Type": "application/json"}
    )

    body = assert_json_error(response, [400])
    assert "32 levels" in body["error"]["message"]
    with log.open("rb") as text:
        text.seek(logged_before)
        assert b"Traceback" not in text.read()
