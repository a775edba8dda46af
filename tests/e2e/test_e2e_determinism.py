"""Same request → same bytes: straight from the runtime, through the Worker on a miss, and on a hit."""

import json

import pytest

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(
    ("route", "body", "answer"),
    [
        ("/v1/generate", {"prompt": "lighthouses", "max_tokens": 12}, "text"),
        ("/v1/embed", {"input": "tidal pools"}, "embeddings"),
    ],
    ids=["generate", "embed"],
)
def test_answer_is_identical_direct_miss_and_hit(runtime, worker, unique_prompt, route, body, answer):
    text_field = "prompt" if "prompt" in body else "input"
    body = {**body, text_field: unique_prompt(body[text_field])}

    direct = runtime.post(route, json=body)
    miss = worker.post(route, json=body)
    hit = worker.post(route, json=body)

    assert [direct.status_code, miss.status_code, hit.status_code] == [200] * 3, (direct.text, miss.text)
    assert (miss.headers["x-cache"], hit.headers["x-cache"]) == ("MISS", "HIT")
    assert direct.json()[answer], "the model produced nothing: there would be nothing to compare"
    assert miss.json()[answer] == direct.json()[answer]  # text: equal str ⇔ equal UTF-8 bytes
    assert hit.content == miss.content
    assert miss.json()["fingerprint"] == direct.headers["x-model-fingerprint"]


def test_streams_carry_the_same_text_on_a_miss_and_replayed_from_the_cache(worker, unique_prompt):
    body = {"prompt": unique_prompt("sundials"), "max_tokens": 12}

    streamed_miss = worker.post("/v1/generate", json={**body, "stream": True})  # passed through and stored
    fresh = worker.post("/v1/generate", json=body)
    streamed_hit = worker.post("/v1/generate", json={**body, "stream": True})  # replayed from the cache

    assert [streamed_miss.status_code, fresh.status_code, streamed_hit.status_code] == [200] * 3, fresh.text
    assert (streamed_miss.headers["x-cache"], streamed_hit.headers["x-cache"]) == ("MISS", "HIT")
    assert streamed_hit.headers["content-type"].startswith("text/event-stream")
    assert streamed_text(streamed_miss.text) == fresh.json()["text"] == streamed_text(streamed_hit.text)


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
