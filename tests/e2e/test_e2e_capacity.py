"""Per-key capacity through the real Worker and runtime: one key flooding the origin cannot starve another
(the KeyLimiter Durable Object bounds each key's requests at the origin), and requests too costly for any
lease are refused at the edge."""

import collections
import concurrent.futures
import json
import re

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


def no_store_generate(key: str, unique: str, max_tokens: int) -> PlannedRequest:
    """A long generation that is never served from or written to the cache: it always reaches the origin."""
    body = {"prompt": f"Count from 1 to 200, separated by commas. {unique}", "max_tokens": max_tokens}
    return PlannedRequest(
        "/v1/generate", body, {"Authorization": f"Bearer {key}", "Cache-Control": "no-store"}
    )


@pytest.fixture(scope="module")
def tenants(stack):
    return stack.create_api_key("e2e-flooder"), stack.create_api_key("e2e-neighbour")


def test_a_flooding_key_gets_429_beyond_its_concurrency_and_another_key_is_still_served(
    stack, tenants, unique_prompt, inference_count
):
    flooder, neighbour = tenants

    def planned(key: str, topic: str) -> PlannedRequest:
        return no_store_generate(key, unique_prompt(topic), FLOOD_MAX_TOKENS)

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


# The runtime's fair queue, through the Worker: a queue so short that the flooder's leased requests alone
# (MAX_CONCURRENT_PER_KEY of them) overflow it, so only the per-tenant share (the Worker's
# X-Steadytext-Tenant header) keeps a place for the neighbour. Without the header both keys are the
# runtime's tenant `default`, and the neighbour gets the flooder's 429 queue_full.
SHORT_QUEUE = 4
SHORT_QUEUE_PER_TENANT = 2
QUEUE_DEPTH_METRIC = re.compile(r"^runtime_queue_depth\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


@pytest.fixture
def short_runtime_queue(stack):
    assert CONCURRENT_PER_KEY > SHORT_QUEUE + 1, "the flood would not overflow the runtime's queue"
    default_env = stack.runtime.env
    stack.runtime.stop()
    short = {
        "RUNTIME_QUEUE_SIZE": str(SHORT_QUEUE),
        "RUNTIME_QUEUE_SIZE_PER_TENANT": str(SHORT_QUEUE_PER_TENANT),
    }
    stack.runtime.env = {**default_env, **short}
    try:
        stack.start_runtime()
        yield SHORT_QUEUE_PER_TENANT
    finally:
        stack.runtime.stop()
        stack.runtime.env = default_env
        stack.start_runtime()


def test_a_flood_that_fills_the_runtime_queue_leaves_the_other_tenant_its_place(
    stack, tenants, runtime, unique_prompt, short_runtime_queue
):
    flooder, neighbour = tenants
    tenant_share = short_runtime_queue

    def planned(key: str, topic: str, max_tokens: int) -> PlannedRequest:
        return no_store_generate(key, unique_prompt(topic), max_tokens)

    def queue_depth() -> float:
        return sum(float(value) for value in QUEUE_DEPTH_METRIC.findall(runtime.get("/metrics").text))

    for key in tenants:  # the Worker knows the fingerprint and each key before the flood arrives
        assert send_all(stack.worker_url, [planned(key, "warm-up", 1)], concurrency=1)[0][0].status == 200
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as background:
        # Long answers: the flooder's share stays full while the neighbour's request arrives.
        flood = background.submit(
            send_all,
            stack.worker_url,
            [planned(flooder, f"flood {i}", 64) for i in range(FLOOD)],
            concurrency=FLOOD,
        )
        while queue_depth() < tenant_share:  # the flooder's share of the runtime's queue is full
            assert not flood.done(), [(o.status, o.content[:200]) for o in flood.result()[0]]
        served = send_all(stack.worker_url, [planned(neighbour, "neighbour", 8)], concurrency=1)[0][0]
        flood_outcomes = flood.result()[0]

    assert served.status == 200, (served.status, served.content[:300])
    refusals = collections.Counter(
        json.loads(o.content)["error"]["type"] for o in flood_outcomes if o.status == 429
    )
    # The runtime itself refused the flooder (its queue was really full); the edge may have refused more.
    assert refusals["queue_full"] >= 1, refusals
    assert set(refusals) <= {"queue_full", "concurrency_limited"}, refusals
    assert {o.status for o in flood_outcomes} <= {200, 429}
