"""Regenerate the golden fixtures in contract/fixtures/ from the real runtime and the bundled model.

    .venv/bin/python -m scripts.contract_fixtures

Each fixture is one request sent four ways to the runtime in-process: plain, streamed, streamed with
`stream_options.include_usage` (OpenAI routes), and the exact bytes of each answer. The runtime tests
(tests/runtime/test_contract.py) send the same requests and compare bytes when the runtime's fingerprint
is the fixtures' one (same model, llama.cpp build and backend); the Worker tests (edge/test/contract.test.ts)
prove the Worker replays and derives these bytes from what it stores. Regenerate after a change to the
wire shapes or the model, and review the diff.
"""

import json
import time
from pathlib import Path

from fastapi.testclient import TestClient

from runtime.config.model_source import resolve_model
from runtime.config.settings import RuntimeSettings
from runtime.engine.models import load_models
from runtime.http.app import create_app

FIXTURES = Path(__file__).resolve().parents[1] / "contract" / "fixtures"
# The runtime tests' settings (tests/runtime/conftest.py): n_ctx is part of the fingerprint.
SETTINGS = {"n_ctx": 1024, "max_tokens_cap": 256, "default_max_tokens": 16}
MODEL = "gemma-3-270m-q4_k_m"
# Each request lists its fields in the order the Worker forwards them (edge/src/admission/validate.ts), so
# the Worker tests' fake origin finds the fixture by the forwarded body.

CASES = {
    "generate": ("/v1/generate", {"prompt": "The three primary colours are", "max_tokens": 12}),
    "generate-stop": ("/v1/generate", {"prompt": "Count: one, two,", "max_tokens": 16, "stop": [","]}),
    "generate-unicode": ("/v1/generate", {"prompt": "日本の首都は", "max_tokens": 10}),
    "completion": ("/v1/completions", {"model": MODEL, "prompt": "Water boils at", "max_tokens": 10}),
    "chat": (
        "/v1/chat/completions",
        {"model": MODEL, "messages": [{"role": "user", "content": "Name one planet."}], "max_tokens": 10},
    ),
    "chat-json-schema": (
        "/v1/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Name one planet and say whether it has rings."}],
            "max_tokens": 40,
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "planet",
                    "schema": {
                        "type": "object",
                        "properties": {
                            "planet": {"type": "string", "maxLength": 16},
                            "has_rings": {"type": "boolean"},
                        },
                        "required": ["planet", "has_rings"],
                        "additionalProperties": False,
                    },
                    "strict": True,
                },
            },
        },
    ),
    "completion-sampled": (
        "/v1/completions",
        {
            "model": MODEL,
            "prompt": "Once upon a time",
            "max_tokens": 10,
            "seed": 7,
            "temperature": 0.8,
            "top_p": 0.9,
        },
    ),
    "completion-logprobs": (
        "/v1/completions",
        {
            "model": MODEL,
            "prompt": "The sky is",
            "max_tokens": 8,
            "stop": ["."],
            "temperature": 0.7,
            "logprobs": 3,
        },
    ),
    "chat-logprobs": (
        "/v1/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Name one planet."}],
            "max_tokens": 8,
            "logprobs": True,
            "top_logprobs": 2,
        },
    ),
    "chat-choices": (
        "/v1/chat/completions",
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Name one planet."}],
            "max_tokens": 6,
            "temperature": 1.0,
            "n": 2,
        },
    ),
    "embed": ("/v1/embed", {"input": "a short sentence"}),
    "embeddings": ("/v1/embeddings", {"model": MODEL, "input": ["one", "two"], "encoding_format": "base64"}),
    "tokenize": ("/v1/tokenize", {"prompt": "Hello wörld 🎉 𓀀", "with_pieces": True}),
    "tokenize-chat": ("/v1/tokenize", {"messages": [{"role": "user", "content": "Name one planet."}]}),
    "detokenize": ("/v1/detokenize", {"tokens": [2, 9259, 515, 4010, 671]}),
    # Every document's score is in the answer (no top_n): the Worker tests' fake origin answers these
    # pairs with the real scores; a repeated document is scored (and counted) twice, as listed.
    "rerank": (
        "/v1/rerank",
        {
            "query": "What is the capital of France?",
            "documents": [
                "Bananas are rich in potassium.",
                "Paris is the capital and largest city of France.",
                "Bananas are rich in potassium.",
            ],
            "return_documents": True,
        },
    ),
}
STREAMING = {"/v1/generate", "/v1/completions", "/v1/chat/completions"}
OPENAI_STREAMING = {"/v1/completions", "/v1/chat/completions"}


def record(client: TestClient, route: str, request: dict) -> dict:
    plain = client.post(route, json=request)
    assert plain.status_code == 200, plain.text
    fixture = {
        "route": route,
        "request": request,
        "fingerprint": plain.headers["x-model-fingerprint"],
        "answer": plain.text,
    }
    if route in STREAMING:
        fixture["pieces"] = json.loads(plain.headers["x-steadytext-pieces"])
        fixture["stream"] = client.post(route, json={**request, "stream": True}).text
    if route == "/v1/rerank":
        fixture["document_tokens"] = json.loads(plain.headers["x-steadytext-document-tokens"])
    if route in OPENAI_STREAMING:
        with_usage = {**request, "stream": True, "stream_options": {"include_usage": True}}
        fixture["stream_with_usage"] = client.post(route, json=with_usage).text
    return fixture


def main() -> None:
    settings = RuntimeSettings(_env_file=None, **SETTINGS)
    models = load_models(resolve_model(settings), settings)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with TestClient(create_app(settings, lambda: models)) as client:
        # The app loads (and runs its start-up probes) on a thread of its own: wait until it is ready.
        deadline = time.monotonic() + 300
        while client.get("/readyz").status_code != 200:
            if time.monotonic() > deadline:
                raise SystemExit("the runtime never became ready")
            time.sleep(0.05)
        for name, (route, request) in CASES.items():
            fixture = {"runtime_settings": SETTINGS, **record(client, route, request)}
            text = json.dumps(fixture, indent=2, ensure_ascii=False) + "\n"
            (FIXTURES / f"{name}.json").write_text(text, encoding="utf-8")
            print(f"{name}: {route}")


if __name__ == "__main__":
    main()
