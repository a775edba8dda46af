"""The official `openai` client against the OpenAI-compatible routes, unchanged."""

import numpy as np
import pytest
from openai import OpenAI

MODEL = "gemma-3-270m-q4_k_m"


@pytest.fixture()
def openai_client(base_url):
    return OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0)


def test_models(openai_client):
    assert [model.id for model in openai_client.models.list()] == [MODEL]


def test_completions_match_native_generate(openai_client, client):
    completion = openai_client.completions.create(model=MODEL, prompt="The sky is", max_tokens=8)
    native = client.post("/v1/generate", json={"prompt": "The sky is", "max_tokens": 8}).json()
    assert completion.choices[0].text == native["text"]
    assert completion.choices[0].finish_reason == native["finish_reason"]
    assert completion.system_fingerprint == native["fingerprint"]
    assert completion.usage.completion_tokens == native["usage"]["completion_tokens"]


def test_completions_stream(openai_client):
    plain = openai_client.completions.create(model=MODEL, prompt="Count: 1, 2, 3,", max_tokens=10)
    chunks = list(
        openai_client.completions.create(
            model=MODEL,
            prompt="Count: 1, 2, 3,",
            max_tokens=10,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(chunk.choices[0].text for chunk in chunks if chunk.choices) == plain.choices[0].text
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens


def test_chat_uses_the_template_and_is_deterministic(openai_client):
    messages = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Name a fruit."},
    ]
    first = openai_client.chat.completions.create(
        model=MODEL, messages=messages, max_tokens=12, temperature=0
    )
    second = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=12, seed=42)
    assert first.choices[0].message.role == "assistant"
    assert first.choices[0].message.content
    assert first.choices[0].message.content == second.choices[0].message.content
    # The template's end-of-turn marker is a stop, never part of the answer.
    assert "<end_of_turn>" not in first.choices[0].message.content


def test_chat_stream(openai_client):
    messages = [{"role": "user", "content": "Say hello."}]
    plain = openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10)
    chunks = list(
        openai_client.chat.completions.create(model=MODEL, messages=messages, max_tokens=10, stream=True)
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == plain.choices[0].finish_reason


def test_embeddings_both_encodings_match_native(openai_client, client):
    texts = ["first text", "second text"]
    native = client.post("/v1/embed", json={"input": texts}).json()["embeddings"]
    default = openai_client.embeddings.create(model=MODEL, input=texts)  # the client asks for base64
    as_floats = openai_client.embeddings.create(model=MODEL, input=texts, encoding_format="float")
    for result in (default, as_floats):
        assert [item.index for item in result.data] == [0, 1]
        assert [np.float32(item.embedding).tolist() for item in result.data] == native
    assert default.usage.prompt_tokens > 0
