"""Seeded sampling, n choices and logprobs through the runtime's HTTP routes (real model, real server)."""

import json

import httpx

from tests.contract import PIECES_HEADER, check, check_stream
from tests.runtime.conftest import serve, wait_ready
from tests.runtime.test_batching import post_all_at_once

MODEL = "gemma-3-270m-q4_k_m"
SAMPLED = {"model": MODEL, "prompt": "Once upon a time", "max_tokens": 12, "temperature": 0.9, "seed": 11}
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 8}


def text_of(answer: dict, index: int = 0) -> str:
    return answer["choices"][index]["text"]


def test_seeded_sampling_repeats_and_the_seed_decides(client):
    first = client.post("/v1/completions", json=SAMPLED)
    assert first.status_code == 200, first.text
    check("completion-answer.json", first.json())
    assert all(client.post("/v1/completions", json=SAMPLED).content == first.content for _ in range(3))
    others = {text_of(client.post("/v1/completions", json={**SAMPLED, "seed": s}).json()) for s in range(5)}
    assert len(others) > 1, "five seeds gave one text: the seed is not used"
    greedy = client.post("/v1/completions", json={**SAMPLED, "temperature": 0}).json()
    assert greedy["id"] != first.json()["id"]


def test_a_vanishing_temperature_answers_as_greedy_decoding(client):
    """Any temperature above 0 is accepted; one so small that logits / temperature overflows was a 500."""
    body = {"model": MODEL, "messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 6}
    greedy = client.post("/v1/chat/completions", json={**body, "temperature": 0}).json()
    for tiny in (1e-320, 5e-324):
        response = client.post("/v1/chat/completions", json={**body, "temperature": tiny, "n": 2})
        assert response.status_code == 200, response.text
        for choice in response.json()["choices"]:
            assert choice["message"] == greedy["choices"][0]["message"]


def test_native_generate_samples_too(client):
    body = {"prompt": "Once upon a time", "max_tokens": 12, "temperature": 0.9, "top_k": 40, "seed": 3}
    answers = [client.post("/v1/generate", json=body).json()["text"] for _ in range(2)]
    greedy = client.post("/v1/generate", json={**body, "temperature": 0}).json()["text"]
    assert answers[0] == answers[1]
    assert {answers[0]} != {greedy} or client.post("/v1/generate", json={**body, "seed": 4}).json()[
        "text"
    ] != greedy


def test_sampled_answers_alone_equal_answers_under_eight_concurrent_clients(client, base_url):
    bodies = [{**SAMPLED, "seed": seed, "top_p": 0.9} for seed in range(8)]
    alone = [client.post("/v1/completions", json=body).content for body in bodies]
    assert post_all_at_once(base_url, bodies, "/v1/completions") == alone


def test_n_choices_are_deterministic_and_choice_zero_is_the_single_answer(client):
    single = client.post("/v1/completions", json=SAMPLED).json()
    three = client.post("/v1/completions", json={**SAMPLED, "n": 3})
    assert three.status_code == 200, three.text
    check("completion-answer.json", three.json())
    assert len(json.loads(three.headers[PIECES_HEADER])["choices"]) == 3  # each choice's stream pieces
    answer = three.json()
    assert [choice["index"] for choice in answer["choices"]] == [0, 1, 2]
    assert text_of(answer, 0) == text_of(single)
    assert len({text_of(answer, i) for i in range(3)}) > 1
    assert client.post("/v1/completions", json={**SAMPLED, "n": 3}).content == three.content
    assert (
        answer["usage"]["completion_tokens"]
        == sum(len(choice["text"]) > 0 for choice in answer["choices"]) * 0
        + answer["usage"]["total_tokens"]
        - answer["usage"]["prompt_tokens"]
    )
    chat = client.post("/v1/chat/completions", json={**CHAT, "temperature": 1.0, "n": 2}).json()
    check("chat-answer.json", chat)
    assert len(chat["choices"]) == 2


def test_a_stream_of_n_choices_sends_them_one_after_another_as_the_plain_answer_has_them(client):
    body = {**CHAT, "temperature": 1.0, "n": 3, "logprobs": True, "top_logprobs": 1}
    plain = client.post("/v1/chat/completions", json=body)
    answer = plain.json()
    events = streamed(client, "/v1/chat/completions", body)
    indexes = [event["choices"][0]["index"] for event in events if event["choices"]]
    assert indexes == sorted(indexes) and set(indexes) == {0, 1, 2}
    pieces = json.loads(plain.headers[PIECES_HEADER])["choices"]
    for index, choice in enumerate(answer["choices"]):
        chunks = [e["choices"][0] for e in events if e["choices"] and e["choices"][0]["index"] == index]
        assert chunks[0]["delta"] == {"role": "assistant", "content": ""}
        texts = [chunk["delta"]["content"] for chunk in chunks[1:-1]]
        assert "".join(texts) == choice["message"]["content"]
        assert [len(text) for text in texts] == pieces[index]["lengths"]
        assert chunks[-1]["finish_reason"] == choice["finish_reason"]
        content = [entry for chunk in chunks[1:] for entry in chunk["logprobs"]["content"]]
        assert content == choice["logprobs"]["content"]
    assert events[-1]["usage"] == answer["usage"]
    again = client.post("/v1/chat/completions", json={**body, "stream": True}).text
    assert again == client.post("/v1/chat/completions", json={**body, "stream": True}).text


def streamed(client, route: str, body: dict) -> list[dict]:
    text = client.post(route, json={**body, "stream": True, "stream_options": {"include_usage": True}}).text
    return check_stream(route, text)


def test_completion_logprobs_match_between_stream_and_plain(client):
    body = {**SAMPLED, "logprobs": 3, "stop": [" the"]}
    plain = client.post("/v1/completions", json=body)
    answer = plain.json()
    check("completion-answer.json", answer)
    logprobs = answer["choices"][0]["logprobs"]
    tokens = answer["usage"]["completion_tokens"]
    assert (
        len(logprobs["tokens"]) == len(logprobs["token_logprobs"]) == len(logprobs["text_offset"]) == tokens
    )
    assert all(len(top) <= 3 and all(v <= 0 for v in top.values()) for top in logprobs["top_logprobs"])
    assert logprobs["text_offset"][0] == 0 and logprobs["text_offset"] == sorted(logprobs["text_offset"])
    pieces = json.loads(plain.headers[PIECES_HEADER])
    events = streamed(client, "/v1/completions", body)
    chunks = [e["choices"][0]["logprobs"] for e in events if e["choices"]]
    assert [len(c["tokens"]) for c in chunks[:-1]] == pieces["tokens"]
    joined = {key: [item for chunk in chunks for item in chunk[key]] for key in logprobs}
    assert joined == logprobs


def test_chat_logprobs_in_openai_shape_and_in_the_stream(client):
    body = {**CHAT, "logprobs": True, "top_logprobs": 2}
    answer = client.post("/v1/chat/completions", json=body).json()
    check("chat-answer.json", answer)
    content = answer["choices"][0]["logprobs"]["content"]
    assert len(content) == answer["usage"]["completion_tokens"]
    # Greedy: the chosen token is the most likely one.
    assert all(entry["top_logprobs"][0]["token"] == entry["token"] for entry in content)
    assert (
        bytes(b for entry in content for b in entry["bytes"]).decode()
        == answer["choices"][0]["message"]["content"]
    )
    events = streamed(client, "/v1/chat/completions", body)
    streamed_content = [
        item for e in events[1:] if e["choices"] for item in e["choices"][0]["logprobs"]["content"]
    ]
    assert streamed_content == content
    no_alternatives = client.post("/v1/chat/completions", json={**CHAT, "logprobs": True}).json()
    assert all(entry["top_logprobs"] == [] for entry in no_alternatives["choices"][0]["logprobs"]["content"])


def test_without_logprobs_the_answer_keeps_null_and_the_plain_pieces_header(client):
    plain = client.post("/v1/chat/completions", json=CHAT)
    assert plain.json()["choices"][0]["logprobs"] is None
    assert isinstance(json.loads(plain.headers[PIECES_HEADER]), list)


def test_n_above_the_setting_is_refused_naming_it(app_factory):
    with serve(app_factory(max_choices=2)) as url:
        wait_ready(url)
        response = httpx.post(f"{url}/v1/completions", json={**SAMPLED, "n": 3}, timeout=60)
        assert httpx.post(f"{url}/v1/completions", json={**SAMPLED, "n": 2}, timeout=120).status_code == 200
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == "n" and error["message"] == "n: must be at most 2 (RUNTIME_MAX_CHOICES)"
