"""Auth, the per-key rate limit and DLP, enforced by the real Worker in front of the real runtime."""

import time

import pytest

from infra.wrangler_config import load_wrangler_config
from scripts.load import PlannedRequest, local_client, send_all

pytestmark = pytest.mark.e2e

_LIMITER = next(
    rule["simple"] for rule in load_wrangler_config()["ratelimits"] if rule["name"] == "RATE_LIMITER"
)
RATE_LIMIT, RATE_WINDOW_S = _LIMITER["limit"], _LIMITER["period"]  # per API key
SSN = "123-45-6789"
LUHN_VALID_CARD = "4111 1111 1111 1111"
LUHN_INVALID_CARD = "4111 1111 1111 1112"


@pytest.fixture(scope="module")
def keyless(stack):
    """A client of the Worker that sends no key unless a test adds one."""
    with local_client(stack.worker_url) as client:
        yield client


def test_missing_or_unknown_key_is_401_json(keyless, unique_prompt):
    body = {"prompt": unique_prompt("locks"), "max_tokens": 2}

    missing = keyless.post("/v1/generate", json=body)
    unknown = keyless.post("/v1/generate", json=body, headers={"Authorization": "Bearer sk_not_a_real_key"})
    malformed = keyless.post("/v1/generate", json=body, headers={"Authorization": "Basic Zm9vOmJhcg=="})

    for response in (missing, unknown, malformed):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["type"] == "unauthorized"


def test_key_works_in_either_header(keyless, api_key, unique_prompt):
    body = {"prompt": unique_prompt("keys"), "max_tokens": 2}

    by_bearer = keyless.post("/v1/generate", json=body, headers={"Authorization": f"Bearer {api_key}"})
    by_x_api_key = keyless.post("/v1/generate", json=body, headers={"X-API-Key": api_key})

    assert (by_bearer.status_code, by_x_api_key.status_code) == (200, 200), (
        by_bearer.text,
        by_x_api_key.text,
    )
    assert by_x_api_key.content == by_bearer.content


def test_revoked_key_is_403(stack, keyless, unique_prompt):
    key = stack.create_api_key("e2e-revoked")
    body = {"prompt": unique_prompt("revocation"), "max_tokens": 2}

    before = keyless.post("/v1/generate", json=body, headers={"X-API-Key": key})
    stack.revoke_api_key("e2e-revoked")
    after = keyless.post("/v1/generate", json=body, headers={"X-API-Key": key})

    assert before.status_code == 200, before.text
    assert after.status_code == 403, after.text
    assert after.json()["error"]["type"] == "forbidden"


def test_rate_limit_allows_exactly_the_limit_per_window_then_429(stack, api_key, worker, unique_prompt):
    body = {"prompt": unique_prompt("speed limits"), "max_tokens": 2}
    assert worker.post("/v1/generate", json=body).status_code == 200  # cached: the burst is all hits

    outcomes = burst_within_one_window(stack, body)
    other_key_meanwhile = worker.post("/v1/generate", json=body)

    statuses = [outcome.status for outcome in outcomes]
    assert statuses.count(200) == RATE_LIMIT and statuses.count(429) == 50, sorted(set(statuses))
    refused = next(outcome for outcome in outcomes if outcome.status == 429)
    assert 1 <= int(refused.headers["retry-after"]) <= RATE_WINDOW_S
    assert b'"rate_limited"' in refused.content
    assert other_key_meanwhile.status_code == 200, "the limit is per key"


def burst_within_one_window(stack, body, attempts=2):
    """RATE_LIMIT + 50 requests with one new key inside one limiter window (fixed, aligned to the clock):
    a burst that straddles a boundary proves nothing, so it is repeated with another new key."""
    for attempt in range(attempts):
        request = PlannedRequest(
            "/v1/generate", body, {"X-API-Key": stack.create_api_key(f"e2e-limited-{attempt}")}
        )
        into_window = time.time() % RATE_WINDOW_S
        if into_window > RATE_WINDOW_S / 3:  # leave the burst at least 40 s
            time.sleep(RATE_WINDOW_S - into_window + 0.5)
        window = time.time() // RATE_WINDOW_S
        outcomes, _ = send_all(stack.worker_url, [request] * (RATE_LIMIT + 50), concurrency=32)
        if time.time() // RATE_WINDOW_S == window:
            return outcomes
    pytest.fail(f"no burst of {RATE_LIMIT + 50} requests fitted in one {RATE_WINDOW_S} s window")


@pytest.mark.parametrize(
    ("route", "field", "sensitive"),
    [
        ("/v1/generate", "prompt", SSN),
        ("/v1/generate", "prompt", LUHN_VALID_CARD),
        ("/v1/embed", "input", SSN),
    ],
    ids=["ssn-generate", "card-generate", "ssn-embed"],
)
def test_dlp_blocks_before_the_origin_and_never_echoes_or_stores(
    stack, worker, inference_count, route, field, sensitive
):
    kind = "generate" if route == "/v1/generate" else "embed"
    runs_before = inference_count(kind)

    response = worker.post(route, json={field: f"Please remember {sensitive} for me."})

    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["type"] == "dlp_violation"
    assert sensitive not in response.text and sensitive.replace(" ", "") not in response.text
    assert inference_count(kind) == runs_before, "the blocked prompt reached the runtime"
    stored = stack.d1_query(
        "SELECT COUNT(*) AS n FROM answer_cache "
        f"WHERE cache_key || route || fingerprint || body || content_type LIKE '%{sensitive[-4:]} for me%'"
    )
    assert stored == [{"n": 0}], "the blocked prompt was cached"


def test_dlp_lets_a_number_that_fails_the_luhn_check_through(worker):
    response = worker.post(
        "/v1/generate", json={"prompt": f"Order {LUHN_INVALID_CARD} shipped.", "max_tokens": 2}
    )

    assert response.status_code == 200, response.text
