"""The Batch API through the official `openai` client, unchanged, on the real runtime and `wrangler dev`
(Workflows and Queues simulated locally): upload, create, poll, download; answers byte-identical to the
same requests sent live; per-line errors; cancel; and a Worker killed mid-batch and restarted on the same
persisted state, losing and duplicating nothing."""

from __future__ import annotations

import io
import json
import time

import openai
import pytest

from tests.e2e.conftest import digit_free_token

pytestmark = pytest.mark.e2e

ENDED = {"completed", "failed", "expired", "cancelled"}
# Generous: the lines share two CPU cores with everything else on the machine. A limit, not a measurement.
BATCH_TIMEOUT_S = 900


@pytest.fixture(scope="module")
def client(stack, api_key):
    # Retries on: the client may meet the Worker while a test restarts it.
    return openai.OpenAI(base_url=f"{stack.worker_url}/v1", api_key=api_key, max_retries=5)


@pytest.fixture(scope="module")
def model(client):
    return client.models.list().data[0].id


def line(custom_id: str, url: str, body: dict) -> str:
    return json.dumps({"custom_id": custom_id, "method": "POST", "url": url, "body": body})


def run_batch(client, lines: list[str], endpoint: str):
    upload = client.files.create(file=("batch.jsonl", io.BytesIO("\n".join(lines).encode())), purpose="batch")
    assert client.files.retrieve(upload.id).bytes == len("\n".join(lines).encode())
    return client.batches.create(input_file_id=upload.id, endpoint=endpoint, completion_window="24h")


def wait_until(client, batch_id: str, done) -> object:
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if done(batch):
            return batch
        time.sleep(1)
    raise AssertionError(f"batch {batch_id} did not get there in {BATCH_TIMEOUT_S} s: {batch}")


def wait_for_quiet(read, quiet_s: float = 15) -> float:
    """The value once it has not changed for `quiet_s`."""
    deadline = time.monotonic() + BATCH_TIMEOUT_S
    value = read()
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = read()
        if now == value:
            return now
        value = now
    raise AssertionError(f"still changing after {BATCH_TIMEOUT_S} s")


def file_lines(client, file_id: str | None) -> list[str]:
    return client.files.content(file_id).text.splitlines() if file_id else []


@pytest.mark.timeout(BATCH_TIMEOUT_S + 300)
def test_a_two_hundred_line_batch_answers_every_line_as_live_requests_do(client, worker, model):
    inputs = {f"line-{i}": f"a note about {digit_free_token()}" for i in range(190)}
    good = [line(cid, "/v1/embeddings", {"model": model, "input": text}) for cid, text in inputs.items()]
    bad = {
        "malformed": "{ not json at all",
        "wrong-url": line("wrong-url", "/v1/chat/completions", {"model": model, "messages": []}),
        "duplicate": line("line-0", "/v1/embeddings", {"model": model, "input": "again"}),
        "dlp": line("dlp", "/v1/embeddings", {"model": model, "input": "card 4111 1111 1111 1111"}),
        "unknown-field": line("unknown-field", "/v1/embeddings", {"model": model, "input": "x", "colour": 1}),
        "get": json.dumps({"custom_id": "get", "method": "GET", "url": "/v1/embeddings", "body": {}}),
        "no-body": json.dumps({"custom_id": "no-body", "method": "POST", "url": "/v1/embeddings"}),
        "stream": line("stream", "/v1/embeddings", {"model": model, "input": "x", "stream": True}),
        "empty-input": line("empty-input", "/v1/embeddings", {"model": model, "input": []}),
        "no-custom-id": json.dumps({"method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}),
    }
    lines = good[:100] + list(bad.values()) + good[100:]
    assert len(lines) == 200

    batch = run_batch(client, lines, "/v1/embeddings")
    batch = wait_until(client, batch.id, lambda b: b.status in ENDED)

    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed, batch.request_counts.failed) == (
        200,
        190,
        10,
    )
    outputs = file_lines(client, batch.output_file_id)
    assert sorted(json.loads(raw)["custom_id"] for raw in outputs) == sorted(inputs)
    for index, raw in enumerate(outputs):
        custom_id = json.loads(raw)["custom_id"]
        # The same request sent live: every one as it comes (the answer the batch left in the cache), and
        # one in ten computed afresh by the runtime (no-cache skips the stored answer).
        fresh = index % 10 == 0
        live = worker.post(
            "/v1/embeddings",
            json={"model": model, "input": inputs[custom_id]},
            headers={"cache-control": "no-cache"} if fresh else {},
        )
        assert live.status_code == 200 and live.headers["x-cache"] == ("BYPASS" if fresh else "HIT")
        assert b"\n" not in live.content
        assert f'"body":{live.text}}}'.encode() in raw.encode(), custom_id

    errors = [json.loads(raw) for raw in file_lines(client, batch.error_file_id)]
    assert len(errors) == 10
    codes = {
        (e["custom_id"], (e["error"] or {}).get("code"), (e["response"] or {}).get("status_code"))
        for e in errors
    }
    assert codes == {
        (None, "invalid_json_line", None),
        ("wrong-url", "invalid_url", None),
        ("line-0", "duplicate_custom_id", None),
        ("dlp", None, 422),
        ("unknown-field", None, 400),
        ("get", "invalid_line", None),
        ("no-body", "invalid_line", None),
        ("stream", "invalid_line", None),
        ("empty-input", None, 400),
        (None, "invalid_line", None),
    }
    assert "4111" not in client.files.content(batch.error_file_id).text


@pytest.mark.timeout(BATCH_TIMEOUT_S + 300)
def test_a_cancel_mid_way_stops_the_work(client, model, inference_count):
    lines = [
        line(
            f"line-{i}",
            "/v1/chat/completions",
            {
                "model": model,
                "messages": [{"role": "user", "content": f"Tell me about {digit_free_token()}."}],
                "max_tokens": 24,
            },
        )
        for i in range(60)
    ]
    batch = run_batch(client, lines, "/v1/chat/completions")
    wait_until(client, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed >= 2)
    at_cancel = inference_count("generate")
    assert client.batches.cancel(batch.id).status in {"cancelling", "cancelled"}
    batch = wait_until(client, batch.id, lambda b: b.status in ENDED)
    assert batch.status == "cancelled"

    # The lines already at the origin finish (at most the batch's share of MAX_CONCURRENT_PER_KEY: 4);
    # then nothing of the batch reaches the runtime any more.
    settled = wait_for_quiet(lambda: inference_count("generate"))
    assert settled - at_cancel <= 4
    ran = batch.request_counts.completed
    assert 2 <= ran < 60
    assert len(file_lines(client, batch.output_file_id)) == ran
    errors = [json.loads(raw) for raw in file_lines(client, batch.error_file_id)]
    assert len(errors) == 60 - ran
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}


@pytest.mark.timeout(BATCH_TIMEOUT_S + 300)
def test_a_worker_killed_mid_batch_loses_and_duplicates_nothing(stack, client, model):
    lines = [
        line(
            f"line-{i}",
            "/v1/chat/completions",
            {
                "model": model,
                "messages": [{"role": "user", "content": f"Name {digit_free_token()}."}],
                "max_tokens": 8,
            },
        )
        for i in range(20)
    ]
    batch = run_batch(client, lines, "/v1/chat/completions")
    before = wait_until(
        client, batch.id, lambda b: b.request_counts is not None and b.request_counts.completed >= 3
    )
    assert before.request_counts.completed < 20

    stack.worker.stop(grace_s=0)  # SIGKILL: no draining, messages in flight and the Workflow's run lost
    stack.start_worker()  # the same persisted D1, R2, Workflow and queue state

    batch = wait_until(client, batch.id, lambda b: b.status in ENDED)
    assert batch.status == "completed"
    assert (batch.request_counts.total, batch.request_counts.completed) == (20, 20)
    custom_ids = [json.loads(raw)["custom_id"] for raw in file_lines(client, batch.output_file_id)]
    assert custom_ids == [f"line-{i}" for i in range(20)]
    assert batch.error_file_id is None
