"""Tenants cannot reach into each other's answers: two tenants send concurrent requests that share a
cache key (they differ only in fields outside it), and one tenant's malformed request can neither fail
nor leak into the other's."""

import json
import uuid

import pytest

from scripts.load import PlannedRequest, send_all

pytestmark = pytest.mark.e2e

SECRET_TEXT = "tenant A private note"
SECRET_FIELD = "tenant_a_private_note"
# What the Worker used to forward as sent: the runtime then refused the request with a 400 echoing
# A's text, and B's identical request, joined to A's in-flight call, received that 400.
MALFORMED = [
    ({"stream_options": {SECRET_FIELD: True}}, f"stream_options.{SECRET_FIELD}"),
    ({"stream_options": {"include_usage": SECRET_TEXT}}, "stream_options.include_usage"),
    ({"stream_options": SECRET_TEXT}, "stream_options"),
    ({"stream": SECRET_TEXT}, "stream"),
    ({"user": SECRET_TEXT * 40}, "user"),
    ({SECRET_FIELD: SECRET_TEXT}, SECRET_FIELD),
]


@pytest.fixture(scope="module")
def tenants(stack):
    return {name: stack.create_api_key(f"e2e-tenant-{name}-{uuid.uuid4().hex[:8]}") for name in "ab"}


@pytest.fixture(scope="module")
def model(worker):
    return worker.get("/v1/models").json()["data"][0]["id"]


def test_a_malformed_request_cannot_fail_another_tenants_identical_request(
    stack, tenants, model, inference_count, unique_prompt
):
    # Long enough that B's requests arrive while the answer is being generated.
    base = {"model": model, "prompt": unique_prompt("shared lighthouses"), "max_tokens": 48}
    malformed = [{**base, **extra} for extra, _ in MALFORMED]
    as_a = {"X-API-Key": tenants["a"]}
    as_b = {"X-API-Key": tenants["b"]}
    # A's requests go first, as the would-be leaders of the in-flight call B's requests join.
    planned = [PlannedRequest("/v1/completions", body, as_a) for body in malformed] + [
        PlannedRequest("/v1/completions", {**base, "user": f"tenant-b-{i}"}, as_b) for i in range(4)
    ]
    before = inference_count("generate")

    outcomes, _ = send_all(stack.worker_url, planned, concurrency=len(planned))

    a_outcomes, b_outcomes = outcomes[: len(malformed)], outcomes[len(malformed) :]
    assert [outcome.status for outcome in b_outcomes] == [200] * 4, [o.content[:300] for o in b_outcomes]
    assert len({json.loads(outcome.content)["choices"][0]["text"] for outcome in b_outcomes}) == 1
    for outcome in b_outcomes:
        assert SECRET_TEXT not in outcome.content.decode() and SECRET_FIELD not in outcome.content.decode()
    for outcome, (_, field) in zip(a_outcomes, MALFORMED, strict=True):
        assert outcome.status == 400, (field, outcome.content[:300])
        assert json.loads(outcome.content)["error"]["field"] == field
    assert inference_count("generate") - before == 1, "A's requests reached the runtime, or B's ran twice"
