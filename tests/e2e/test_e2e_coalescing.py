"""N identical concurrent misses through the Worker → the runtime generates exactly once."""

import json

import pytest

from scripts.load import PlannedRequest, send_all

pytestmark = pytest.mark.e2e

CONCURRENT_CLIENTS = 8


def test_concurrent_identical_misses_run_the_model_once(stack, api_key, inference_count, unique_prompt):
    # Long enough to still be generating when the last duplicate arrives.
    body = {"prompt": unique_prompt("glaciers"), "max_tokens": 48}
    headers = {"Authorization": f"Bearer {api_key}"}
    before = inference_count("generate")

    outcomes, _ = send_all(
        stack.worker_url,
        [PlannedRequest("/v1/generate", body, headers)] * CONCURRENT_CLIENTS,
        concurrency=CONCURRENT_CLIENTS,
    )

    assert [outcome.status for outcome in outcomes] == [200] * CONCURRENT_CLIENTS, outcomes
    assert len({json.loads(outcome.content)["text"] for outcome in outcomes}) == 1
    assert inference_count("generate") - before == 1
