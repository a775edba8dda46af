"""Richer API keys through the real stack (key CLI → local KV/D1 → wrangler dev → runtime): an expired key
and a route outside a key's scope are refused naming why, and a daily request budget of 10 admits exactly
10 of 50 concurrent requests, cache hits included."""

import time
import uuid

import pytest

from scripts.load import PlannedRequest, send_all

pytestmark = pytest.mark.e2e


def client_ip() -> str:
    """A CF-Connecting-IP of its own, so a refused key here never counts against another test's IP."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


def key_name(label: str) -> str:
    return f"e2e-keys-{label}-{uuid.uuid4().hex[:8]}"


# The `worker` client sends the default key as a Bearer token, which wins over X-API-Key: these tests
# send their own key as the Bearer token.


def test_an_expired_key_is_refused_naming_its_expiry(stack, worker, unique_prompt):
    name = key_name("expiring")
    key = stack.create_api_key(name, "--expires", "1s")
    [row] = stack.d1_query(f"SELECT expires_at FROM api_keys WHERE name = '{name}'")
    while time.time() < row["expires_at"] + 0.5:
        time.sleep(0.25)

    refused = worker.post(
        "/v1/generate",
        json={"prompt": unique_prompt("expired"), "max_tokens": 4},
        headers={"Authorization": f"Bearer {key}", "CF-Connecting-IP": client_ip()},
    )

    assert refused.status_code == 403, refused.text
    expiry = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(row["expires_at"]))
    assert refused.json()["error"] == {"type": "forbidden", "message": f"API key expired at {expiry}.000Z"}


def test_a_route_outside_the_scope_is_refused_naming_it(stack, worker, unique_prompt):
    key = stack.create_api_key(key_name("scoped"), "--routes", "/v1/embed")
    headers = {"Authorization": f"Bearer {key}", "CF-Connecting-IP": client_ip()}

    refused = worker.post("/v1/generate", json={"prompt": unique_prompt("out of scope")}, headers=headers)
    allowed = worker.post("/v1/embed", json={"input": unique_prompt("in scope")}, headers=headers)

    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["type"] == "forbidden"
    assert "/v1/generate" in refused.json()["error"]["message"]
    assert allowed.status_code == 200, allowed.text


def test_fifty_concurrent_requests_against_a_budget_of_ten_admit_exactly_ten(stack, worker, unique_prompt):
    body = {"prompt": unique_prompt("budget burst"), "max_tokens": 4}
    # Cached first under another key: every request of the burst is a hit, and hits still count.
    assert worker.post("/v1/generate", json=body).status_code == 200
    key = stack.create_api_key(key_name("budget"), "--daily-requests", "10")
    planned = [PlannedRequest("/v1/generate", body, {"X-API-Key": key}) for _ in range(50)]

    outcomes, _ = send_all(stack.worker_url, planned, concurrency=50)

    statuses = sorted(outcome.status for outcome in outcomes)
    unexpected = [o.content[:200] for o in outcomes if o.status not in (200, 429)]
    assert statuses == [200] * 10 + [429] * 40, unexpected
    refusal = next(outcome for outcome in outcomes if outcome.status == 429)
    assert b"budget_exhausted" in refusal.content and b"daily requests budget (10 of 10" in refusal.content
    assert {o.headers.get("x-cache") for o in outcomes if o.status == 200} == {"HIT"}


def test_usage_reports_tokens_cache_and_metadata_and_keeps_no_prompt(stack, worker, unique_prompt):
    key = stack.create_api_key(key_name("usage"))
    headers = {"Authorization": f"Bearer {key}", "X-Steadytext-Metadata": '{"team": "search", "run": 7}'}
    prompt = unique_prompt("usage ledger")
    body = {"prompt": prompt, "max_tokens": 4}
    miss = worker.post("/v1/generate", json=body, headers=headers)
    hit = worker.post("/v1/generate", json=body, headers=headers)
    assert [miss.headers["x-cache"], hit.headers["x-cache"]] == ["MISS", "HIT"]
    usage = miss.json()["usage"]
    tokens = usage["prompt_tokens"] + usage["completion_tokens"]

    # Rows are written off the hot path, within about 100 ms of the answer.
    deadline = time.monotonic() + 30
    while (answer := worker.get("/v1/usage", headers={"Authorization": f"Bearer {key}"}).json())["totals"][
        "requests"
    ] < 2 and time.monotonic() < deadline:
        time.sleep(0.2)

    assert answer["totals"] == {
        "requests": 2,
        "prompt_tokens": 2 * usage["prompt_tokens"],
        "completion_tokens": 2 * usage["completion_tokens"],
        "cached_tokens": tokens,
        "errors": 0,
    }
    assert [(row["route"], row["requests"]) for row in answer["by_day_and_route"]] == [("/v1/generate", 2)]
    assert [(group["metadata"], group["requests"]) for group in answer["by_metadata"]] == [
        ({"run": 7, "team": "search"}, 2)
    ]
    rows = stack.d1_query(f"SELECT * FROM key_usage WHERE key_id = '{answer['key_id']}'")
    assert len(rows) == 2 and prompt not in str(rows) and miss.json()["text"] not in str(rows)
