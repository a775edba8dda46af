"""A bounded load run through the real path: 1,000 requests, 32 at a time, mostly hits and a few misses;
zero errors, and every request shows up in D1 `request_metrics`."""

import collections
import json
import time

import pytest

from scripts.load import PlannedRequest, send_all

pytestmark = pytest.mark.e2e

TOTAL_REQUESTS = 1_000
CONCURRENCY = 32
DISTINCT_PROMPTS = 8  # the misses: each one runs the model once (coalesced), so keep them few and short
LOAD_KEYS = 2  # the per-key limit is 600 a minute: 500 requests per key stay under it
# Metrics rows are written off the hot path (waitUntil, batched): give the last batch time to land.
METRICS_SETTLE_TIMEOUT_S = 60


@pytest.fixture(scope="module")
def load_api_keys(stack):
    return [stack.create_api_key(f"e2e-load-{index}") for index in range(LOAD_KEYS)]


def test_load_run_has_no_errors_and_every_request_is_recorded(stack, load_api_keys, unique_prompt):
    prompts = [unique_prompt(f"load {index}") for index in range(DISTINCT_PROMPTS)]
    planned = [
        PlannedRequest(
            "/v1/generate",
            {"prompt": prompts[index % DISTINCT_PROMPTS], "max_tokens": 2},
            {"Authorization": f"Bearer {load_api_keys[index % len(load_api_keys)]}"},
        )
        for index in range(TOTAL_REQUESTS)
    ]
    started_ms = int(time.time() * 1000) - 1

    outcomes, _ = send_all(stack.worker_url, planned, concurrency=CONCURRENCY)
    finished_ms = int(time.time() * 1000) + 1

    # wrangler dev's proxy (not the Worker) may drop a rare POST; scripts.load resends those. The exact
    # request_metrics count below proves the dropped attempts never reached the Worker.
    assert sum(outcome.dev_proxy_retries for outcome in outcomes) <= TOTAL_REQUESTS // 100
    statuses = collections.Counter(outcome.status for outcome in outcomes)
    assert statuses == {200: TOTAL_REQUESTS}, (statuses, [o for o in outcomes if o.status != 200][:3])
    texts_by_prompt = collections.defaultdict(set)
    for request, outcome in zip(planned, outcomes, strict=True):
        texts_by_prompt[request.body["prompt"]].add(json.loads(outcome.content)["text"])
    assert all(len(texts) == 1 for texts in texts_by_prompt.values()), texts_by_prompt
    assert collections.Counter(outcome.headers["x-cache"] for outcome in outcomes)["HIT"] > TOTAL_REQUESTS / 2

    recorded = settled_metrics(stack, started_ms, finished_ms)
    assert recorded == {("/v1/generate", 200): TOTAL_REQUESTS}, recorded


def settled_metrics(stack, started_ms: int, finished_ms: int) -> dict[tuple[str, int], int]:
    """Rows of requests made during the run, by (endpoint, status), once all TOTAL_REQUESTS have landed
    (or whatever is there at the deadline)."""
    query = (
        "SELECT endpoint, status, COUNT(*) AS n FROM request_metrics "
        f"WHERE ts_ms BETWEEN {started_ms} AND {finished_ms} GROUP BY endpoint, status"
    )
    deadline = time.monotonic() + METRICS_SETTLE_TIMEOUT_S
    while True:
        counts = {(row["endpoint"], row["status"]): row["n"] for row in stack.d1_query(query)}
        if sum(counts.values()) >= TOTAL_REQUESTS or time.monotonic() > deadline:
            return counts
        time.sleep(2)
