"""The runtime goes away: cached answers keep flowing, misses get 503 + Retry-After; it comes back on the
same port and misses succeed again, with the same Worker process."""

import time

import pytest

pytestmark = pytest.mark.e2e

# The Worker's circuit breaker may keep the origin closed for a while after it recovers.
RECOVERY_TIMEOUT_S = 90


def test_runtime_outage_and_recovery(stack, worker, unique_prompt):
    cached_body = {"prompt": unique_prompt("harbours"), "max_tokens": 8}
    warm = worker.post("/v1/generate", json=cached_body)
    assert warm.status_code == 200, warm.text
    worker_before = stack.worker.pid

    stack.runtime.stop()
    try:
        hit = worker.post("/v1/generate", json=cached_body)
        assert hit.status_code == 200, hit.text
        assert hit.headers["x-cache"] == "HIT"
        assert hit.content == warm.content

        miss = worker.post("/v1/generate", json={"prompt": unique_prompt("outages"), "max_tokens": 8})
        assert miss.status_code == 503, miss.text
        assert int(miss.headers["retry-after"]) > 0
        assert "error" in miss.json()
    finally:
        stack.start_runtime()

    recovered = retry_until_ok(worker, {"prompt": unique_prompt("recoveries"), "max_tokens": 8})
    assert recovered.headers["x-cache"] == "MISS"
    assert stack.worker.pid == worker_before, "the Worker was restarted"


def retry_until_ok(worker, body):
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    while True:
        response = worker.post("/v1/generate", json=body)
        if response.status_code == 200 or time.monotonic() > deadline:
            assert response.status_code == 200, response.text
            return response
        assert response.status_code == 503, response.text
        time.sleep(min(float(response.headers.get("retry-after", 1)), 5))
