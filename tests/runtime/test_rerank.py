"""/v1/rerank: scores from the generative model's yes/no logits, ordered, deterministic alone and next to
other work on the same model (each pair's prompt is decoded alone in a slot), with clear 400s."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from runtime.engine.fingerprint import compute_fingerprint
from runtime.engine.relevance import RELEVANCE_METHOD, relevance_score
from tests.contract import ROUTES, check
from tests.runtime.conftest import metric_value, runtime_settings

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Paris is the capital and largest city of France.",
    "Bananas are rich in potassium.",
    "The Eiffel tower is in Paris.",
    "Python is a programming language.",
]
TOKENS_HEADER = ROUTES["document_tokens_header"]


def rerank(client: httpx.Client, **body) -> httpx.Response:
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS, **body})
    assert response.status_code == 200, response.text
    check("rerank-answer.json", response.json())
    return response


@pytest.fixture(scope="module")
def full(base_url) -> httpx.Response:
    """The four documents ranked once, for the tests that only read the answer."""
    with httpx.Client(base_url=base_url, timeout=300) as client:
        return rerank(client)


def scores_by_index(answer: dict) -> dict[int, float]:
    return {result["index"]: result["relevance_score"] for result in answer["results"]}


def test_results_are_ordered_by_score_then_index(full):
    answer = full.json()
    keys = [(-result["relevance_score"], result["index"]) for result in answer["results"]]
    assert keys == sorted(keys) and sorted(index for _, index in keys) == [0, 1, 2, 3]
    assert all(0 < result["relevance_score"] < 1 for result in answer["results"])
    assert all("document" not in result for result in answer["results"])


def test_equal_documents_get_equal_scores_in_request_order(client):
    answer = rerank(client, documents=["same text", "other text", "same text"]).json()
    scores = scores_by_index(answer)
    assert scores[0] == scores[2]
    order = [result["index"] for result in answer["results"]]
    assert order.index(0) + 1 == order.index(2) or scores[1] == scores[0]


def test_top_n_and_return_documents(client, full):
    ranked = full.json()
    top = rerank(client, top_n=2, return_documents=True).json()
    assert [r["index"] for r in top["results"]] == [r["index"] for r in ranked["results"][:2]]
    assert [r["relevance_score"] for r in top["results"]] == [
        r["relevance_score"] for r in ranked["results"][:2]
    ]
    assert all(r["document"] == {"text": DOCUMENTS[r["index"]]} for r in top["results"])
    assert top["usage"] == ranked["usage"]  # every document was scored


def test_usage_adds_up_the_document_tokens_header(full):
    response = full
    tokens = json.loads(response.headers[TOKENS_HEADER])
    assert len(tokens) == len(DOCUMENTS) and all(count > 0 for count in tokens)
    assert response.json()["usage"] == {"prompt_tokens": sum(tokens), "total_tokens": sum(tokens)}
    assert response.headers["x-model-fingerprint"] == response.json()["fingerprint"]


def test_a_pair_scores_the_same_in_any_list(client, full):
    """The score of (query, document) does not depend on the other documents: the Worker caches pairs."""
    alone = scores_by_index(rerank(client, documents=[DOCUMENTS[2]]).json())[0]
    assert scores_by_index(full.json())[2] == alone


def test_an_obviously_relevant_document_scores_above_an_irrelevant_one(client):
    """Gemma 3 270M is a weak judge (docs/runtime.md), but it ranks a plain case right."""
    body = {
        "query": "banana nutrition",
        "documents": [
            "The stock market fell sharply on Monday.",
            "Bananas are a good source of potassium and vitamin B6.",
        ],
    }
    answer = client.post("/v1/rerank", json=body).json()
    assert [result["index"] for result in answer["results"]] == [1, 0]


def test_scores_alone_equal_scores_next_to_other_work(client, base_url, full):
    """Reranks and generations sent together share the model's slots; no score or answer changes."""
    generations = [
        {"prompt": "The three primary colours are", "max_tokens": 12},
        {"prompt": "Hi", "max_tokens": 12},
    ]
    alone_short = rerank(client, documents=DOCUMENTS[:2]).content
    alone_generations = [client.post("/v1/generate", json=body).content for body in generations]
    requests = [
        ("/v1/rerank", {"query": QUERY, "documents": DOCUMENTS}),
        ("/v1/generate", generations[0]),
        ("/v1/rerank", {"query": QUERY, "documents": DOCUMENTS[:2]}),
        ("/v1/generate", generations[1]),
    ]
    start = threading.Barrier(len(requests))

    def send(request: tuple[str, dict]) -> bytes:
        with httpx.Client(base_url=base_url, timeout=300) as own:
            start.wait()
            response = own.post(request[0], json=request[1])
            assert response.status_code == 200, response.text
            return response.content

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        together = list(pool.map(send, requests))
    assert together == [full.content, alone_generations[0], alone_short, alone_generations[1]]


def test_reranks_run_on_the_generation_worker_and_are_counted(client):
    before = client.get("/metrics").text
    rerank(client, documents=DOCUMENTS[1:3])
    after = client.get("/metrics").text
    for name, labels, added in [
        ("runtime_inferences_total", 'kind="rerank"', 1),
        ("runtime_rerank_documents_total", "", 2),
    ]:
        assert metric_value(after, name, labels) - metric_value(before, name, labels) == added


def test_the_score_is_the_softmax_of_yes_and_no():
    import numpy as np

    logits = np.zeros(8, dtype=np.float32)
    logits[3], logits[5] = 2.0, -1.0
    assert relevance_score(logits, yes=3, no=5) == pytest.approx(np.exp(2.0) / (np.exp(2.0) + np.exp(-1.0)))
    logits[3], logits[5] = -1e30, 1e30  # no overflow at the extremes
    assert relevance_score(logits, yes=3, no=5) == 0.0


def test_the_fingerprint_covers_the_relevance_prompt(loaded_models, monkeypatch):
    model, settings = loaded_models.model, runtime_settings()
    today = compute_fingerprint(model, settings).value
    monkeypatch.setitem(RELEVANCE_METHOD, "prompt", "Query: {query}\nDocument: {document}\nRelevant:")
    assert compute_fingerprint(model, settings).value != today


@pytest.mark.parametrize(
    "body, status, field, message",
    [
        ({"query": QUERY, "documents": []}, 400, "documents", "must not be an empty array"),
        ({"query": QUERY, "documents": ["a"] * 65}, 400, "documents", "must have at most 64 items"),
        ({"query": QUERY, "documents": ["a", ""]}, 400, "documents[1]", "must not be empty"),
        ({"query": QUERY, "documents": "a"}, 400, "documents", "must be an array of strings"),
        ({"query": QUERY, "documents": ["a", 3]}, 400, "documents[1]", "must be a string"),
        ({"query": "", "documents": ["a"]}, 400, "query", "must not be empty"),
        ({"documents": ["a"]}, 400, "query", "is required"),
        ({"query": QUERY, "documents": ["a"], "top_n": 0}, 400, "top_n", "must be at least 1"),
        (
            {"query": QUERY, "documents": ["a"], "return_documents": 1},
            400,
            "return_documents",
            "must be a boolean",
        ),
        ({"query": QUERY, "documents": ["a"], "model": "gpt-4"}, 404, "model", None),
    ],
)
def test_bad_rerank_bodies_name_the_field(client, body, status, field, message):
    response = client.post("/v1/rerank", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["field"] == field
    if message is not None:
        assert error["message"] == f"{field}: {message}"


def test_a_document_too_long_for_the_context_is_named(client):
    documents = ["short", "word " * 1100]
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": documents})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "documents[1]"
    assert "the context window is 1024 tokens" in error["message"]
