"""The wire contract through the real stack (runtime + wrangler dev): a streamed cache hit is byte for
byte the live stream that filled it, plain and streamed requests fill the cache for each other without a
byte changing, and the same bad request gets the same error from the Worker and from the runtime."""

import json

import httpx
import pytest

from tests.contract import (
    bad_request_body,
    bad_requests,
    check_answer,
    check_stream,
    expected_error,
    limits_for,
)

pytestmark = pytest.mark.e2e

MODEL = "gemma-3-270m-q4_k_m"
# The stack's limits: edge/wrangler.jsonc's MAX_BODY_BYTES / MAX_TOKENS_LIMIT and the runtime's defaults.
WORKER_LIMITS = limits_for(max_body_bytes=65_536, max_tokens_limit=512)
RUNTIME_LIMITS = limits_for(max_body_bytes=1_048_576, max_tokens_limit=512)
WITH_USAGE = {"stream_options": {"include_usage": True}}


def request_for(route: str, text: str) -> dict:
    if route == "/v1/generate":
        return {"prompt": text, "max_tokens": 8}
    if route == "/v1/completions":
        return {"model": MODEL, "prompt": text, "max_tokens": 8}
    return {"model": MODEL, "messages": [{"role": "user", "content": text}], "max_tokens": 8}


STREAM_CASES = [
    ("/v1/generate", {}),
    ("/v1/completions", {}),
    ("/v1/completions", WITH_USAGE),
    ("/v1/chat/completions", {}),
    ("/v1/chat/completions", WITH_USAGE),
]
STREAM_IDS = ["generate", "completions", "completions-usage", "chat", "chat-usage"]


def post(client: httpx.Client, route: str, body: dict) -> httpx.Response:
    response = client.post(route, json=body)
    assert response.status_code == 200, response.text[:300]
    return response


@pytest.mark.parametrize(("route", "options"), STREAM_CASES, ids=STREAM_IDS)
def test_a_streamed_hit_is_the_live_streams_bytes(runtime, worker, unique_prompt, route, options):
    body = {**request_for(route, unique_prompt("harbours")), "stream": True, **options}
    direct = post(runtime, route, body)
    live = post(worker, route, body)
    replayed = post(worker, route, body)
    assert (live.headers["x-cache"], replayed.headers["x-cache"]) == ("MISS", "HIT")
    assert live.content == direct.content  # the Worker passes the runtime's stream on untouched
    assert replayed.content == live.content
    events = check_stream(route, replayed.text)
    assert len(events) > 3, "one event per piece: more than the opening/closing events"


@pytest.mark.parametrize(("route", "options"), STREAM_CASES, ids=STREAM_IDS)
def test_a_streamed_miss_fills_plain_hits_and_the_other_way_round(
    runtime, worker, unique_prompt, route, options
):
    # Streamed first: the plain hit is the runtime's own plain answer, byte for byte.
    first = request_for(route, unique_prompt("lanterns"))
    assert post(worker, route, {**first, "stream": True, **options}).headers["x-cache"] == "MISS"
    plain_hit = post(worker, route, first)
    assert plain_hit.headers["x-cache"] == "HIT"
    assert plain_hit.content == post(runtime, route, first).content
    check_answer(route, plain_hit.text)

    # Plain first: the streamed hit is the runtime's own stream, byte for byte (pieces included).
    second = request_for(route, unique_prompt("orchards"))
    assert post(worker, route, second).headers["x-cache"] == "MISS"
    streamed_hit = post(worker, route, {**second, "stream": True, **options})
    assert streamed_hit.headers["x-cache"] == "HIT"
    assert streamed_hit.content == post(runtime, route, {**second, "stream": True, **options}).content


def test_include_usage_and_plain_streams_share_one_stored_answer(runtime, worker, unique_prompt):
    body = {**request_for("/v1/chat/completions", unique_prompt("comets")), "stream": True}
    assert post(worker, "/v1/chat/completions", body).headers["x-cache"] == "MISS"
    with_usage = post(worker, "/v1/chat/completions", {**body, **WITH_USAGE})
    assert with_usage.headers["x-cache"] == "HIT"
    assert with_usage.content == post(runtime, "/v1/chat/completions", {**body, **WITH_USAGE}).content
    usage_chunk = json.loads(with_usage.text.split("\n\n")[-3][len("data: ") :])
    assert usage_chunk["choices"] == [] and usage_chunk["usage"]["completion_tokens"] > 0


def send_bad(client: httpx.Client, case: dict, limits: dict[str, int]) -> httpx.Response:
    headers = dict(case.get("headers", {}))
    if "content_type" in case:
        headers["content-type"] = case["content_type"]
    return client.request(
        case["method"], case["route"], content=bad_request_body(case, limits), headers=headers
    )


BOTH_LAYERS = [case for case in bad_requests("worker") if "runtime" in case["layers"]]


@pytest.mark.parametrize("case", BOTH_LAYERS, ids=lambda case: case["name"])
def test_the_same_bad_request_gets_the_same_error_from_both_layers(runtime, worker, case):
    from_worker = send_bad(worker, case, WORKER_LIMITS)
    from_runtime = send_bad(runtime, case, RUNTIME_LIMITS)
    assert (from_worker.status_code, from_runtime.status_code) == (case["status"], case["status"])
    assert from_worker.json() == expected_error(case, WORKER_LIMITS)
    assert from_runtime.json() == expected_error(case, RUNTIME_LIMITS)
    if WORKER_LIMITS == RUNTIME_LIMITS or "{" not in case["error"]["message"]:
        assert from_worker.json() == from_runtime.json()
