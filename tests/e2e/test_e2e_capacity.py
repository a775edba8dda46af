"""Per-key capacity through the real Worker and runtime: one key flooding the origin cannot starve another
(the KeyLimiter Durable Object bounds each key's requests at the origin), and requests too costly for any
lease are refused at the edge."""

import collections
import json

import pytest

from infra.wrangler_config import load_wrangler_config
from scripts.load import PlannedRequest, send_all

pytestmark = pytest.mark.e2e

WORKER_VARS = load_wrangler_config()["vars"]
CONCURRENT_PER_KEY = int(WORKER_VARS["MAX_CONCURRENT_PER_KEY"])
FLOOD = 24  # far under the rate limit (600 a minute), far over the per-key limit and the runtime's queue
# Long enough that the first answer comes after the whole flood has arrived at the edge, short enough
# that the neighbour, queued behind the flooder's leased requests in the runtime, is answered well
# within ORIGIN_TIMEOUT_MS on a slow CPU.
FLOOD_MAX_TOKENS = 12


@pytest.fixture(scope="module")
def tenants(stack):
    return stack.create_api_key("e2e-flooder"), stack.create_api_key("e2e-neighbour")


def test_a_flooding_key_gets_429_beyond_its_concurrency_and_another_key_is_still_served(
    stack, tenants, unique_prompt, inference_count
):
    flooder, neighbour = tenants
    no_store = {"Cache-Control": "no-store"}

    def planned(key: str, topic: str) -> PlannedRequest:
        body = {
            "prompt": f"Count from 1 to 200, separated by commas. {unique_prompt(topic)}",
            "max_tokens": FLOOD_MAX_TOKENS,
        }
        return PlannedRequest("/v1/generate", body, {"Authorization": f"Bearer {key}", **no_store})

    for key in tenants:  # the Worker knows the fingerprint and each key before the flood arrives
        warm = planned(key, "warm-up")
        assert send_all(stack.worker_url, [warm], concurrency=1)[0][0].status == 200
    plan = [planned(flooder, f"flood {i}") for i in range(FLOOD)] + [
        planned(neighbour, f"neighbour {i}") for i in range(2)
    ]
    before = inference_count("generate")

    outcomes, _ = send_all(stack.worker_url, plan, concurrency=len(plan))

    flood, served = outcomes[:FLOOD], outcomes[FLOOD:]
    assert [o.status for o in served] == [200, 200], [(o.status, o.content[:200]) for o in served]
    statuses = collections.Counter(o.status for o in flood)
    assert set(statuses) <= {200, 429}, statuses
    # The first CONCURRENT_PER_KEY to arrive all hold a lease; the rest arrive while they still run.
    assert statuses[200] >= CONCURRENT_PER_KEY, statuses
    assert statuses[429] >= FLOOD - 2 * CONCURRENT_PER_KEY, statuses
    for refused in (o for o in flood if o.status == 429):
        error = json.loads(refused.content)["error"]
        assert error["type"] == "concurrency_limited", error  # the edge's limit, not the runtime's queue_full
        assert "MAX_CONCURRENT_PER_KEY" in error["message"]
        assert int(refused.headers["retry-after"]) >= 1
    # Refused requests never reached the runtime: every model run is an answered request.
    assert inference_count("generate") - before == statuses[200] + len(served)


def test_a_request_larger_than_the_key_budget_is_a_400_naming_it(worker):
    budget = int(WORKER_VARS["MAX_TOKENS_IN_FLIGHT_PER_KEY"])
    response = worker.post("/v1/generate", json={"prompt": "x" * budget, "max_tokens": 8})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == "prompt"
    assert "MAX_TOKENS_IN_FLIGHT_PER_KEY" in error["message"]


@pytest.mark.parametrize("path", ["/v1/embed", "/v1/embeddings"])
def test_more_embedding_inputs_than_the_edge_cap_is_a_400_naming_it(worker, path):
    cap = int(WORKER_VARS["MAX_EMBED_INPUTS"])
    response = worker.post(path, json={"input": [f"item {i}" for i in range(cap + 1)]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == "input"
    assert f"{cap} (MAX_EMBED_INPUTS)" in error["message"]
