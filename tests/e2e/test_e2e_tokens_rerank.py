"""Tokenize and rerank through the real stack (wrangler dev + the runtime on the bundled model): the count
is the official openai client's usage.prompt_tokens; an overlapping rerank sends only its new documents to
the runtime, and shared documents keep their scores; bad input is a clear 4xx."""

import re

import openai
import pytest

from tests.e2e.conftest import digit_free_token

pytestmark = pytest.mark.e2e

DOCUMENTS_METRIC = re.compile(r"^runtime_rerank_documents_total ([0-9.e+]+)$", re.MULTILINE)


def documents_scored(runtime) -> float:
    """Documents the runtime scored for relevance, from its own /metrics."""
    response = runtime.get("/metrics")
    response.raise_for_status()
    found = DOCUMENTS_METRIC.search(response.text)
    return float(found.group(1)) if found else 0.0


@pytest.fixture(scope="module")
def openai_client(stack, api_key):
    return openai.OpenAI(base_url=f"{stack.worker_url}/v1", api_key=api_key, max_retries=0)


def test_tokenize_count_is_the_openai_clients_usage(worker, openai_client, unique_prompt):
    model = openai_client.models.list().data[0].id
    prompt = unique_prompt("harbours")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": prompt}]

    completion = openai_client.completions.create(model=model, prompt=prompt, max_tokens=1)
    chat = openai_client.chat.completions.create(model=model, messages=messages, max_tokens=1)
    counted = worker.post("/v1/tokenize", json={"prompt": prompt})
    counted_chat = worker.post("/v1/tokenize", json={"messages": messages, "with_pieces": True})

    assert counted.status_code == counted_chat.status_code == 200, counted.text
    assert counted.json()["count"] == completion.usage.prompt_tokens
    assert counted_chat.json()["count"] == chat.usage.prompt_tokens
    again = worker.post("/v1/tokenize", json={"prompt": prompt})
    assert (counted.headers["x-cache"], again.headers["x-cache"]) == ("MISS", "HIT")
    assert again.content == counted.content
    text = worker.post("/v1/detokenize", json={"tokens": counted_chat.json()["tokens"]}).json()["text"]
    pieces = counted_chat.json()["pieces"]
    assert text.encode() == b"".join(bytes(p) if isinstance(p, list) else p.encode() for p in pieces)


def test_overlapping_reranks_score_only_the_new_documents(worker, runtime):
    query = f"Which sentence is about the sea? ({digit_free_token()})"
    a, b, c, d = (
        f"{topic} ({digit_free_token()})"
        for topic in ("Waves break on the shore", "Bread rises", "Fish swim", "Ink dries")
    )
    before = documents_scored(runtime)

    first = worker.post("/v1/rerank", json={"query": query, "documents": [a, b, c]})
    after_first = documents_scored(runtime)
    second = worker.post(
        "/v1/rerank", json={"query": query, "documents": [b, c, d], "return_documents": True}
    )
    after_second = documents_scored(runtime)

    assert (first.status_code, second.status_code) == (200, 200), second.text
    assert (first.headers["x-cache"], second.headers["x-cache"]) == ("MISS", "PARTIAL")
    assert (after_first - before, after_second - after_first) == (3, 1)  # the second call sent only d
    first_scores = {r["index"]: r["relevance_score"] for r in first.json()["results"]}
    second_scores = {r["index"]: r["relevance_score"] for r in second.json()["results"]}
    assert (second_scores[0], second_scores[1]) == (first_scores[1], first_scores[2])
    # The Worker renders the list from pairs in the runtime's exact bytes.
    direct = runtime.post(
        "/v1/rerank", json={"query": query, "documents": [b, c, d], "return_documents": True}
    )
    assert direct.content == second.content
    hit = worker.post("/v1/rerank", json={"query": query, "documents": [d, a]})
    assert hit.headers["x-cache"] == "HIT"


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/v1/rerank", {"query": "Which one?", "documents": []}, "documents"),
        ("/v1/rerank", {"query": "Which one?", "documents": ["a", ""]}, "documents[1]"),
        ("/v1/detokenize", {"tokens": [2, 262144]}, "tokens[1]"),
        ("/v1/detokenize", {"tokens": [2, -1]}, "tokens[1]"),
        ("/v1/tokenize", {"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, "body"),
    ],
)
def test_bad_input_is_a_clear_400_at_both_layers(worker, runtime, path, body, field):
    for layer in (worker, runtime):
        response = layer.post(path, json=body)
        assert response.status_code == 400, response.text
        assert response.json()["error"]["field"] == field
