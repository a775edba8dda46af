"""AI Gateway's cache headers through the real stack (wrangler dev in front of the real runtime):
cf-aig-cache-status and the tokens a hit saved, cf-aig-skip-cache as no-cache, cf-aig-cache-ttl as a
fixed life in D1, cf-aig-cache-key as a namespace no other key can reach, and a 400 naming the header
for a malformed value. Engine runs are counted on the runtime's own /metrics."""

from __future__ import annotations

import uuid

import pytest

from scripts.load import local_client

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def other_worker(stack):
    """A client of the Worker with a second tenant's key."""
    key = stack.create_api_key(f"e2e-cache-controls-{uuid.uuid4().hex[:8]}")
    with local_client(stack.worker_url, key) as client:
        yield client


def generate(client, prompt: str, headers: dict[str, str] | None = None, **fields):
    return client.post(
        "/v1/generate", json={"prompt": prompt, "max_tokens": 8, **fields}, headers=headers or {}
    )


def test_hit_and_miss_carry_ai_gateways_status_and_the_tokens_a_hit_saved(
    worker, runtime, unique_prompt, inference_count
):
    prompt = unique_prompt("a lighthouse")
    before = inference_count("generate")

    miss = generate(worker, prompt)
    hit = generate(worker, prompt)

    assert (miss.status_code, hit.status_code) == (200, 200), (miss.text, hit.text)
    assert (miss.headers["x-cache"], miss.headers["cf-aig-cache-status"]) == ("MISS", "MISS")
    assert (hit.headers["x-cache"], hit.headers["cf-aig-cache-status"]) == ("HIT", "HIT")
    assert miss.headers["x-steadytext-tokens-saved"] == "0"
    usage = runtime.post("/v1/generate", json={"prompt": prompt, "max_tokens": 8}).json()["usage"]
    saved = usage["prompt_tokens"] + usage["completion_tokens"]
    assert hit.headers["x-steadytext-tokens-saved"] == str(saved)
    assert hit.content == miss.content
    assert inference_count("generate") - before == 2  # the miss, and the runtime asked directly


def test_skip_cache_reads_nothing_and_stores_the_fresh_answer(worker, unique_prompt, inference_count):
    prompt = unique_prompt("a quiet harbour")
    generate(worker, prompt)
    before = inference_count("generate")

    skipped = generate(worker, prompt, {"cf-aig-skip-cache": "true"})

    assert skipped.status_code == 200, skipped.text
    assert (skipped.headers["x-cache"], skipped.headers["cf-aig-cache-status"]) == ("BYPASS", "MISS")
    assert inference_count("generate") - before == 1
    assert generate(worker, prompt).headers["x-cache"] == "HIT"


def test_a_namespace_is_the_calling_keys_own(worker, other_worker, unique_prompt, inference_count):
    prompt = unique_prompt("a paper boat")
    namespace = {"cf-aig-cache-key": "shared-team-name"}
    before = inference_count("generate")

    mine = generate(worker, prompt, namespace)
    theirs = generate(other_worker, prompt, namespace)
    shared = generate(worker, prompt)

    assert [r.headers["x-cache"] for r in (mine, theirs, shared)] == ["MISS", "MISS", "MISS"]
    assert len({r.headers["x-cache-key"] for r in (mine, theirs, shared)}) == 3
    assert inference_count("generate") - before == 3
    assert generate(worker, prompt, namespace).headers["x-cache-key"] == mine.headers["x-cache-key"]
    assert generate(other_worker, prompt, namespace).headers["cf-aig-cache-status"] == "HIT"
    assert inference_count("generate") - before == 3


def test_a_request_ttl_is_the_answers_fixed_life_in_d1(stack, worker, unique_prompt):
    response = generate(worker, unique_prompt("a red kite"), {"cf-aig-cache-ttl": "120"})

    assert response.status_code == 200, response.text
    [row] = stack.d1_query(
        "SELECT created_at, expires_at, fixed_ttl_seconds FROM answer_cache "
        f"WHERE cache_key = '{response.headers['x-cache-key']}'"
    )
    assert row["fixed_ttl_seconds"] == 120
    assert row["expires_at"] - row["created_at"] == 120


@pytest.mark.parametrize(
    ("header", "value", "message"),
    [
        (
            "cf-aig-cache-ttl",
            "30",
            "must be an integer number of seconds from 60 (CACHE_TTL_MIN_SECONDS) "
            "to 604800 (CACHE_MAX_AGE_SECONDS)",
        ),
        (
            "cf-aig-cache-key",
            "no spaces allowed",
            "must be 1 to 128 characters of letters, digits and . _ : ~ - (got 17 characters)",
        ),
        ("cf-aig-skip-cache", "maybe", "must be true or false"),
    ],
)
def test_a_malformed_cache_header_is_a_400_naming_it(
    worker, unique_prompt, inference_count, header, value, message
):
    before = inference_count("generate")

    response = generate(worker, unique_prompt("a broken header"), {header: value})

    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": {"type": "invalid_request", "message": f"{header}: {message}", "field": header}
    }
    assert inference_count("generate") == before
