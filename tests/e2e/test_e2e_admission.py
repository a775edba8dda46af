"""Nothing happens before the key is valid, through the real Worker in front of the real runtime: refused
requests reach no origin and write no D1 row (they are counted in the isolate's memory), failed checks
are limited per client IP, and /metrics answers only to METRICS_TOKEN."""

import re
import time
import uuid

import pytest

from infra.wrangler_config import load_wrangler_config
from scripts.load import local_client

pytestmark = pytest.mark.e2e

_LIMITER = next(
    rule["simple"] for rule in load_wrangler_config()["ratelimits"] if rule["name"] == "AUTH_FAILURE_LIMITER"
)
FAILURE_LIMIT, FAILURE_WINDOW_S = _LIMITER["limit"], _LIMITER["period"]  # per client IP
RUNTIME_REQUESTS = re.compile(r"^runtime_requests_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)
ROW_SETTLE_TIMEOUT_S = 30


def client_ip() -> str:
    """An address no other test uses, sent as CF-Connecting-IP (Cloudflare sets it; `wrangler dev` keeps
    the one the client sends), so failed checks here never count against another test."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"


@pytest.fixture(scope="module")
def keyless(stack):
    with local_client(stack.worker_url) as client:
        yield client


@pytest.fixture(scope="module")
def scraper(stack):
    with local_client(stack.worker_url, stack.secrets["METRICS_TOKEN"]) as client:
        yield client


def runtime_requests(runtime) -> float:
    """Every request the runtime answered, on any route but its own /metrics (which this reads)."""
    text = runtime.get("/metrics").text
    counts = RUNTIME_REQUESTS.findall(text)
    return sum(float(value) for labels, value in counts if 'route="/metrics"' not in labels)


def unadmitted(scraper, endpoint: str, status: int) -> float:
    """The in-memory count of requests answered without admission, as the isolate that answers the
    scrape holds it (`wrangler dev` runs one)."""
    text = scraper.get("/metrics").text
    pattern = re.compile(
        rf'^steadytext_edge_unadmitted_requests_total\{{endpoint="{re.escape(endpoint)}",isolate="\w+",'
        rf'status="{status}"\}} ([0-9.e+]+)$',
        re.MULTILINE,
    )
    return sum(float(value) for value in pattern.findall(text))


def wait_for_full_window(seconds_needed: float) -> None:
    """The limiter counts in fixed windows aligned to the clock: start a burst early in one."""
    into_window = time.time() % FAILURE_WINDOW_S
    if into_window > FAILURE_WINDOW_S - seconds_needed:
        time.sleep(FAILURE_WINDOW_S - into_window + 0.5)


def test_refused_requests_reach_no_origin_and_write_no_d1_row(
    stack, keyless, runtime, scraper, unique_prompt
):
    body = {"prompt": unique_prompt("locked doors"), "max_tokens": 2}
    headers = {"CF-Connecting-IP": client_ip()}
    revoked_name = f"e2e-admission-revoked-{uuid.uuid4().hex[:8]}"
    revoked = stack.create_api_key(revoked_name)
    stack.revoke_api_key(revoked_name)
    junk = f"sk_junk_{uuid.uuid4().hex}"
    refused_before = unadmitted(scraper, "/v1/generate", 401)
    unmatched_before = unadmitted(scraper, "unmatched", 404)
    runtime_before = runtime_requests(runtime)
    started_ms = int(time.time() * 1000) - 1

    statuses = [
        keyless.post("/v1/generate", json=body, headers=headers).status_code,
        *(
            keyless.post("/v1/generate", json=body, headers={**headers, "X-API-Key": key}).status_code
            for key in [junk, f"sk_junk_{uuid.uuid4().hex}", junk, revoked]
        ),
        keyless.post("/v1/nothing-here", json=body, headers=headers).status_code,
        keyless.get("/v2/models", headers=headers).status_code,
    ]

    assert statuses == [401, 401, 401, 401, 403, 404, 404]
    assert runtime_requests(runtime) == runtime_before, "a refused request reached the runtime"
    assert unadmitted(scraper, "/v1/generate", 401) - refused_before == 4
    assert unadmitted(scraper, "unmatched", 404) - unmatched_before == 2
    # An admitted request afterwards: once its row is in D1, any row of the refused ones would be too.
    marker = stack.create_api_key(f"e2e-admission-marker-{uuid.uuid4().hex[:8]}")
    assert keyless.post("/v1/generate", json=body, headers={"X-API-Key": marker}).status_code == 200
    rows = rows_since(stack, started_ms, expected=1)
    assert [(row["endpoint"], row["status"]) for row in rows] == [("/v1/generate", 200)], rows


def rows_since(stack, started_ms: int, expected: int) -> list[dict]:
    query = f"SELECT endpoint, status FROM request_metrics WHERE ts_ms >= {started_ms} ORDER BY id"
    deadline = time.monotonic() + ROW_SETTLE_TIMEOUT_S
    while True:
        rows = stack.d1_query(query)
        if len(rows) >= expected or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def test_metrics_answer_only_to_the_metrics_token(keyless, api_key, scraper):
    for credentials in ({"Authorization": f"Bearer {api_key}"}, {"X-API-Key": api_key}, {}):
        refused = keyless.get("/metrics", headers={"CF-Connecting-IP": client_ip(), **credentials})
        assert refused.status_code == 401, refused.text
        assert "steadytext_edge" not in refused.text

    scraped = scraper.get("/metrics")

    assert scraped.status_code == 200, scraped.text
    assert "# TYPE steadytext_edge_requests_total counter" in scraped.text


def test_failed_checks_are_limited_per_client_ip(stack, keyless, unique_prompt):
    valid = stack.create_api_key(f"e2e-admission-ip-{uuid.uuid4().hex[:8]}")
    body = {"prompt": unique_prompt("doormats"), "max_tokens": 2}
    attacker = {"CF-Connecting-IP": client_ip()}
    wait_for_full_window(seconds_needed=20)
    window = time.time() // FAILURE_WINDOW_S

    missing = [keyless.post("/v1/generate", json=body, headers=attacker).status_code for _ in range(5)]
    guesses = [{**attacker, "X-API-Key": f"sk_guess_{i}"} for i in range(FAILURE_LIMIT + 1)]
    failures = [keyless.post("/v1/generate", json=body, headers=guess).status_code for guess in guesses]
    valid_from_attacker = keyless.post("/v1/generate", json=body, headers={**attacker, "X-API-Key": valid})
    valid_elsewhere = keyless.post(
        "/v1/generate", json=body, headers={"CF-Connecting-IP": client_ip(), "X-API-Key": valid}
    )

    assert time.time() // FAILURE_WINDOW_S == window, "the burst straddled a limiter window; run it again"
    assert missing == [401] * 5, "a request without any key is not a failed check"
    assert failures == [401] * FAILURE_LIMIT + [429], failures
    assert valid_from_attacker.status_code == 429, "a blocked IP is refused before any key lookup"
    assert valid_from_attacker.json()["error"]["type"] == "too_many_auth_failures"
    assert 1 <= int(valid_from_attacker.headers["retry-after"]) <= FAILURE_WINDOW_S
    assert valid_elsewhere.status_code == 200, valid_elsewhere.text
