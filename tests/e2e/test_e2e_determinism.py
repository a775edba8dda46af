"""Same request → same bytes: straight from the runtime, through the Worker on a miss, and on a hit."""

import json

import pytest

pytestmark = pytest.mark.e2e


def test_generate_is_byte_identical_direct_miss_and_hit(runtime, worker, unique_prompt):
    body = {"prompt": unique_prompt("lighthouses"), "max_tokens": 12}

    direct = runtime.post("/v1/generate", json=body)
    miss = worker.post("/v1/generate", json=body)
    hit = worker.post("/v1/generate", json=body)

    assert direct.status_code == miss.status_code == hit.status_code == 200, (
        direct.text,
        miss.text,
        hit.text,
    )
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert direct.json()["text"], "the model produced no text: nothing would be compared"
    assert miss.json()["text"].encode() == direct.json()["text"].encode()
    assert hit.content == miss.content
    assert miss.json()["fingerprint"] == direct.json()["fingerprint"] == direct.headers["x-model-fingerprint"]


def test_embeddings_are_identical_direct_miss_and_hit(runtime, worker, unique_prompt):
    body = {"input": unique_prompt("tidal pools")}

    direct = runtime.post("/v1/embed", json=body)
    miss = worker.post("/v1/embed", json=body)
    hit = worker.post("/v1/embed", json=body)

    assert direct.status_code == miss.status_code == hit.status_code == 200, (
        direct.text,
        miss.text,
        hit.text,
    )
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert len(direct.json()["embeddings"][0]) == direct.json()["dim"] > 0
    assert miss.json()["embeddings"] == direct.json()["embeddings"]
    assert hit.content == miss.content


def test_stream_replayed_from_cache_has_the_same_text(worker, unique_prompt):
    body = {"prompt": unique_prompt("sundials"), "max_tokens": 12}
    fresh = worker.post("/v1/generate", json=body)
    assert fresh.status_code == 200, fresh.text

    streamed = worker.post("/v1/generate", json={**body, "stream": True})

    assert streamed.status_code == 200, streamed.text
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed_text(streamed.text) == fresh.json()["text"]


def streamed_text(event_stream: str) -> str:
    """The text of the final `done` event (the interface: it carries the whole text)."""
    events = [
        json.loads(line[len("data: ") :]) for line in event_stream.splitlines() if line.startswith("data: ")
    ]
    done = [event for event in events if event.get("done")]
    assert len(done) == 1, events
    tokens = "".join(event.get("token", "") for event in events if "token" in event)
    assert tokens == done[0]["text"]
    return done[0]["text"]
