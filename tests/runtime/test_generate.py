"""Generation over real HTTP on the real model: determinism, stop strings, streaming, fingerprint."""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from runtime.engine.fingerprint import HEADER

PROMPT = "The three primary colors are"
OTHER_PROMPTS = ["Once upon a time", "def fibonacci(n):", "The capital of France is"]


def generate_bytes(client: httpx.Client, prompt: str, **fields) -> bytes:
    response = client.post("/v1/generate", json={"prompt": prompt, "max_tokens": 12, **fields})
    assert response.status_code == 200, response.text
    return response.content


def stream_events(client: httpx.Client, body: dict) -> list[dict]:
    with client.stream("POST", "/v1/generate", json={**body, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return [
            json.loads(line[len("data: ") :]) for line in response.iter_lines() if line.startswith("data: ")
        ]


def test_answer_shape_and_fingerprint_header(client):
    response = client.post("/v1/generate", json={"prompt": PROMPT, "max_tokens": 8})
    body = response.json()
    status = client.get("/v1/status").json()
    assert set(body) == {"text", "finish_reason", "usage", "model", "fingerprint"}
    assert body["text"]
    assert body["finish_reason"] in ("stop", "length")
    assert body["usage"]["prompt_tokens"] > 0 and 0 < body["usage"]["completion_tokens"] <= 8
    assert response.headers[HEADER] == body["fingerprint"] == status["fingerprint"]
    assert len(body["fingerprint"]) == 32 and int(body["fingerprint"], 16) >= 0
    assert body["model"] == status["model"]["name"] == "gemma-3-270m-q4_k_m"


def test_same_request_same_bytes_twenty_times(client):
    first = generate_bytes(client, PROMPT)
    assert all(generate_bytes(client, PROMPT) == first for _ in range(19))


def test_same_bytes_when_interleaved_with_other_requests(client):
    expected = generate_bytes(client, PROMPT)
    for other in OTHER_PROMPTS * 2:
        generate_bytes(client, other, max_tokens=20)
        client.post("/v1/embed", json={"input": other})
        assert generate_bytes(client, PROMPT) == expected


def test_same_bytes_under_concurrent_load(client, base_url):
    expected = {prompt: generate_bytes(client, prompt) for prompt in [PROMPT, *OTHER_PROMPTS]}
    jobs = [PROMPT, *OTHER_PROMPTS] * 3

    def fetch(prompt: str) -> tuple[str, bytes]:
        with httpx.Client(base_url=base_url, timeout=120) as own:
            return prompt, generate_bytes(own, prompt)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(fetch, jobs))
    assert all(answer == expected[prompt] for prompt, answer in results)


def test_max_tokens_bounds_the_answer(client):
    body = client.post("/v1/generate", json={"prompt": "Count: 1, 2, 3,", "max_tokens": 5}).json()
    assert body["usage"]["completion_tokens"] == 5
    assert body["finish_reason"] == "length"


def test_default_max_tokens_applies(client):
    body = client.post("/v1/generate", json={"prompt": "Count: 1, 2, 3,"}).json()
    assert body["usage"]["completion_tokens"] == 16  # TEST_SETTINGS default_max_tokens


def test_stop_string_ends_the_answer_before_it(client):
    free = client.post("/v1/generate", json={"prompt": "Count: 1, 2, 3,", "max_tokens": 20}).json()["text"]
    assert " 6" in free, free  # the model counts on; the stop below must cut there
    stopped = client.post(
        "/v1/generate", json={"prompt": "Count: 1, 2, 3,", "max_tokens": 20, "stop": [" 6", "never"]}
    ).json()
    assert stopped["finish_reason"] == "stop"
    assert stopped["text"] == free[: free.index(" 6")]
    single = client.post("/v1/generate", json={"prompt": "Count: 1, 2, 3,", "max_tokens": 20, "stop": " 6"})
    assert single.json()["text"] == stopped["text"]


@pytest.mark.parametrize(
    "fields",
    [{"max_tokens": 24}, {"max_tokens": 24, "stop": [" 6"]}, {"max_tokens": 3}],
    ids=["length", "stop-string", "short"],
)
def test_stream_equals_non_stream(client, fields):
    body = {"prompt": "Count: 1, 2, 3,", **fields}
    plain = client.post("/v1/generate", json=body).json()
    events = stream_events(client, body)
    tokens, final = events[:-1], events[-1]
    assert all(set(event) == {"token"} for event in tokens)
    assert "".join(event["token"] for event in tokens) == plain["text"] == final["text"]
    assert final["done"] is True
    for key in ("finish_reason", "usage", "fingerprint", "model"):
        assert final[key] == plain[key]


def test_seed_is_accepted_and_greedy_output_does_not_depend_on_it(client):
    default = client.post("/v1/generate", json={"prompt": PROMPT, "max_tokens": 8}).json()["text"]
    seeded = client.post("/v1/generate", json={"prompt": PROMPT, "max_tokens": 8, "seed": 7}).json()["text"]
    assert seeded == default


def test_unicode_prompt_streams_like_plain(client):
    body = {"prompt": "Traduis en français: «bonjour le monde» 🌍 →", "max_tokens": 12}
    plain = client.post("/v1/generate", json=body).json()
    streamed = "".join(event.get("token", "") for event in stream_events(client, body))
    assert streamed == plain["text"]
