"""Batched decoding changes no byte: a request's answer is the same alone and next to seven others, for
prompts of different lengths, streamed or not, for generation and embeddings; a cancelled request frees
its slot; and the fingerprint names the decoding path."""

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np

from runtime.engine.fingerprint import compute_fingerprint
from runtime.engine.slots import DECODING_PATH
from tests.runtime.conftest import metric_value, runtime_settings, serve, wait_ready

_PARAGRAPH = (
    "The harbour town woke slowly. Fishing boats knocked against the pier, gulls argued over the nets, "
    "and the baker on the corner pulled the first loaves from an oven older than anyone living there. "
)
# Prompts from 2 to ~300 tokens, so the batched sequences sit at different positions and KV lengths.
CORPUS = [
    {"prompt": "Hi", "max_tokens": 10},
    {"prompt": "The three primary colors are", "max_tokens": 14, "stop": ["."]},
    {"prompt": "def fibonacci(n):", "max_tokens": 16},
    {"prompt": "1, 2, 3, 4, 5,", "max_tokens": 12},
    {"prompt": "Q: What is the boiling point of water at sea level?\nA:", "max_tokens": 12},
    {"prompt": _PARAGRAPH * 2 + "What did the baker do?", "max_tokens": 10},
    {"prompt": "Écris une phrase sur la mer :", "max_tokens": 12},
    {"prompt": _PARAGRAPH * 7 + "Summarise the town in one word:", "max_tokens": 8},
]
CLIENTS = 8


def post_all_at_once(base_url: str, bodies: list[dict], path: str = "/v1/generate") -> list[bytes]:
    """Every body from its own client thread, released together, so they share decode steps."""
    start = threading.Barrier(len(bodies))

    def send(body: dict) -> bytes:
        with httpx.Client(base_url=base_url, timeout=300) as own:
            start.wait()
            response = own.post(path, json=body)
            assert response.status_code == 200, response.text
            return response.content

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(send, bodies))


def test_answers_alone_equal_answers_under_eight_concurrent_clients(client, base_url):
    alone = [client.post("/v1/generate", json=body).content for body in CORPUS]
    order = list(range(len(CORPUS)))
    for seed in (1, 2):  # two rounds, each request next to other companions and in another slot
        random.Random(seed).shuffle(order)
        loaded = post_all_at_once(base_url, [CORPUS[index] for index in order])
        assert {index: answer for index, answer in zip(order, loaded, strict=True)} == dict(enumerate(alone))


def test_streams_under_load_equal_the_plain_answers(client, base_url):
    plain = [client.post("/v1/generate", json=body).json() for body in CORPUS]
    streams = post_all_at_once(base_url, [{**body, "stream": True} for body in CORPUS])
    for answer, stream in zip(plain, streams, strict=True):
        events = [json.loads(line[6:]) for line in stream.decode().splitlines() if line.startswith("data: ")]
        assert "".join(event["token"] for event in events[:-1]) == answer["text"]
        assert events[-1]["text"] == answer["text"]
        assert events[-1]["finish_reason"] == answer["finish_reason"]


def test_embeddings_alone_equal_embeddings_under_load(client, base_url):
    texts = [body["prompt"] for body in CORPUS[:4]]
    alone = [client.post("/v1/embed", json={"input": text}).content for text in texts]
    mixed = [("/v1/embed", {"input": text}) for text in texts] + [("/v1/generate", b) for b in CORPUS[:4]]
    start = threading.Barrier(len(mixed))

    def send(job: tuple[str, dict]) -> bytes:
        with httpx.Client(base_url=base_url, timeout=300) as own:
            start.wait()
            return own.post(job[0], json=job[1]).content

    with ThreadPoolExecutor(max_workers=len(mixed)) as pool:
        loaded = list(pool.map(send, mixed))
    assert loaded[: len(texts)] == alone


def test_logits_alone_are_bit_identical_to_logits_in_a_batch(loaded_models, monkeypatch):
    """Stronger than equal answers: every step's logits, compared bit for bit (a changed bit that does
    not flip a greedy token today would flip one for some other prompt)."""
    engine = loaded_models.generator
    seen: dict[object, list[bytes]] = {}  # by the Sequence itself: an id() could be reused
    accept = engine._accept

    def recording(sequence, logits: np.ndarray) -> None:
        seen.setdefault(sequence, []).append(logits.tobytes())
        accept(sequence, logits)

    monkeypatch.setattr(engine, "_accept", recording)
    never = threading.Event()
    prompts = [engine.tokenize_prompt(body["prompt"]) for body in CORPUS]

    alone = []
    for tokens in prompts:
        sequence = engine.sequence(tokens, 12, [], never)
        assert engine.admit(sequence)
        while not sequence.finished:
            engine.step([sequence])
        alone.append(seen[sequence])

    together = [engine.sequence(tokens, 12, [], never) for tokens in prompts]
    for index, sequence in enumerate(together):  # one joins per step, as requests arrive
        assert engine.admit(sequence)
        engine.step(together[: index + 1])
    while not all(sequence.finished for sequence in together):
        engine.step(together)
    assert [seen[sequence] for sequence in together] == alone


def test_cancelling_a_stream_mid_batch_frees_its_slot(app_factory, client):
    long = {"prompt": "Count from 1 to 500: 1, 2, 3,", "max_tokens": 200, "stream": True}
    other = {"prompt": "Write a list of fruits:", "max_tokens": 40}
    small = {"prompt": "The capital of France is", "max_tokens": 6}
    expected_other = client.post("/v1/generate", json=other).json()["text"]
    expected_small = client.post("/v1/generate", json=small).content

    with serve(app_factory(decode_slots=2)) as url, httpx.Client(base_url=url, timeout=300) as http:
        wait_ready(url)
        with http.stream("POST", "/v1/generate", json=long) as doomed:
            doomed_lines = doomed.iter_lines()
            next(line for line in doomed_lines if line.startswith("data: "))
            with http.stream("POST", "/v1/generate", json={**other, "stream": True}) as kept:
                kept_lines = kept.iter_lines()
                first = next(line for line in kept_lines if line.startswith("data: "))
                waiting: dict = {}
                waiter = threading.Thread(
                    target=lambda: waiting.update(
                        answer=httpx.post(f"{url}/v1/generate", json=small, timeout=300)
                    )
                )
                waiter.start()
                _wait_for_waiting_requests(url, 1)  # both slots are busy: it waits
                doomed_lines.close()  # hang up mid-stream: the next step frees the slot
                waiter.join(timeout=120)
                assert waiting["answer"].content == expected_small
                events = [json.loads(first[6:])] + [
                    json.loads(line[6:]) for line in kept_lines if line.startswith("data: ")
                ]
        assert events[-1]["text"] == expected_other
        assert "".join(event["token"] for event in events[:-1]) == expected_other
        metrics = http.get("/metrics").text
    assert metric_value(metrics, "runtime_cancelled_total", 'kind="generate"') == 1
    assert metric_value(metrics, "runtime_generated_tokens_total") < 200 + 40 + 6


def _wait_for_waiting_requests(url: str, depth: int) -> None:
    for _ in range(500):
        text = httpx.get(f"{url}/metrics").text
        if metric_value(text, "runtime_queue_depth", 'model="generate"') == depth:
            return
        threading.Event().wait(0.02)
    raise AssertionError(f"the queue never held {depth} request(s)")


def test_the_fingerprint_names_the_decoding_path_but_not_the_slot_count(loaded_models, client, monkeypatch):
    model, settings = loaded_models.model, runtime_settings()
    today = compute_fingerprint(model, settings).value
    assert loaded_models.fingerprint.value == today
    assert compute_fingerprint(model, runtime_settings(decode_slots=1)).value == today
    # The length of an answer that names no max_tokens: the Worker's key cannot see it.
    assert compute_fingerprint(model, runtime_settings(default_max_tokens=32)).value != today
    monkeypatch.setitem(DECODING_PATH, "weight_repack", True)
    assert compute_fingerprint(model, settings).value != today
    monkeypatch.undo()
    status = client.get("/v1/status").json()
    assert status["decoding_path"] == DECODING_PATH and status["decoding_path"]["kv_unified"] is False
