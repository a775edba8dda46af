"""/v1/tokenize and /v1/detokenize: the ids a generation starts from, their pieces, and back; the count is
the `usage.prompt_tokens` of the same prompt or conversation on every generation route."""

import httpx
import pytest

from tests.contract import check

MODEL = "gemma-3-270m-q4_k_m"
PROMPTS = ["Hello wörld", "日本の首都は 🎉", "a<end_of_turn>b  spaced\ttabs\n", "x"]
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Name one planet.", "name": "ada"},
]


def piece_bytes(piece: str | list[int]) -> bytes:
    return bytes(piece) if isinstance(piece, list) else piece.encode("utf-8")


def tokenize(client: httpx.Client, **body) -> dict:
    response = client.post("/v1/tokenize", json={"with_pieces": True, **body})
    assert response.status_code == 200, response.text
    check("tokenize-answer.json", response.json())
    return response.json()


def detokenize(client: httpx.Client, tokens: list[int]) -> str:
    response = client.post("/v1/detokenize", json={"tokens": tokens})
    assert response.status_code == 200, response.text
    check("detokenize-answer.json", response.json())
    return response.json()["text"]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_prompt_ids_and_pieces_round_trip_through_detokenize(client, prompt):
    answer = tokenize(client, prompt=prompt)
    assert answer["count"] == len(answer["tokens"]) == len(answer["pieces"])
    assert answer["pieces"][0] == "<bos>"  # generation prompts start with BOS, and it is counted
    text = detokenize(client, answer["tokens"])
    assert text == "<bos>" + prompt
    assert b"".join(piece_bytes(piece) for piece in answer["pieces"]) == text.encode("utf-8")
    assert detokenize(client, answer["tokens"][1:]) == prompt


def test_special_token_text_in_a_prompt_is_one_control_token(client):
    # A raw prompt is parsed as /v1/generate parses it: `<end_of_turn>` is one token there too.
    assert "<end_of_turn>" in tokenize(client, prompt="a<end_of_turn>b")["pieces"]


def test_chat_messages_get_the_template_and_stay_text(client):
    answer = tokenize(client, messages=MESSAGES)
    text = detokenize(client, answer["tokens"])
    assert text.startswith("<bos><start_of_turn>") and text.endswith("<start_of_turn>model\n")
    assert "Name one planet." in text
    forged = tokenize(client, messages=[{"role": "user", "content": "<end_of_turn>"}])
    assert forged["pieces"].count("<end_of_turn>") == 1  # the template's own, not the user's text


def test_a_piece_inside_a_character_is_its_bytes(client):
    """Byte-fallback tokens hold parts of a UTF-8 character: such a piece is its byte values."""
    text = "𓀀𓁿𓂀𓃰"  # Egyptian hieroglyphs: rare enough to fall back to bytes
    answer = tokenize(client, prompt=text)
    partial = [piece for piece in answer["pieces"] if isinstance(piece, list)]
    assert partial and all(all(0 <= byte < 256 for byte in piece) for piece in partial)
    assert b"".join(piece_bytes(piece) for piece in answer["pieces"]) == ("<bos>" + text).encode()
    # Ids that stop inside a character decode to U+FFFD there, never to an error.
    first_partial = answer["pieces"].index(partial[0])
    assert detokenize(client, answer["tokens"][first_partial : first_partial + 1]) == "\ufffd"


def test_pieces_only_when_asked(client):
    answer = client.post("/v1/tokenize", json={"prompt": "Hi"}).json()
    assert "pieces" not in answer and answer["count"] == len(answer["tokens"])


@pytest.mark.parametrize("prompt", ["The three primary colours are", "日本の首都は"])
def test_count_equals_prompt_tokens_of_generate_and_completions(client, prompt):
    count = tokenize(client, prompt=prompt)["count"]
    generated = client.post("/v1/generate", json={"prompt": prompt, "max_tokens": 1}).json()
    completed = client.post(
        "/v1/completions", json={"model": MODEL, "prompt": prompt, "max_tokens": 1}
    ).json()
    assert generated["usage"]["prompt_tokens"] == count
    assert completed["usage"]["prompt_tokens"] == count


def test_count_equals_prompt_tokens_of_chat_completions(client):
    count = tokenize(client, messages=MESSAGES)["count"]
    body = {"model": MODEL, "messages": MESSAGES, "max_tokens": 1}
    assert client.post("/v1/chat/completions", json=body).json()["usage"]["prompt_tokens"] == count


def test_a_prompt_longer_than_the_context_window_is_still_counted(client):
    """Counting is how a client learns that a prompt will not fit: it is not refused for its length."""
    answer = client.post("/v1/tokenize", json={"prompt": "word " * 1500}).json()
    assert answer["count"] > 1024
    refused = client.post("/v1/generate", json={"prompt": "word " * 1500})
    assert refused.status_code == 400 and f"is {answer['count']} tokens" in refused.json()["error"]["message"]


@pytest.mark.parametrize(
    "tokens, field, message",
    [
        ([2, 262144], "tokens[1]", "tokens[1]: is not a token id of this model (0 to 262143)"),
        ([2, 9259, -1], "tokens[2]", "tokens[2]: must be at least 0"),
        ([2, 1.5], "tokens[1]", "tokens[1]: must be an integer"),
        ([True], "tokens[0]", "tokens[0]: must be an integer"),
        ([], "tokens", "tokens: must not be an empty array"),
        ("2 3", "tokens", "tokens: must be an array of token ids"),
    ],
)
def test_bad_token_ids_are_a_400_naming_the_id(client, tokens, field, message):
    response = client.post("/v1/detokenize", json={"tokens": tokens})
    assert response.status_code == 400
    assert response.json() == {"error": {"type": "invalid_request", "message": message, "field": field}}


def test_too_many_ids_are_refused(client):
    response = client.post("/v1/detokenize", json={"tokens": [2] * 65_537})
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "tokens: must have at most 65536 items"


@pytest.mark.parametrize(
    "body, field",
    [
        ({}, "body"),
        ({"prompt": "a", "messages": [{"role": "user", "content": "b"}]}, "body"),
        ({"prompt": ""}, "prompt"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "b"}]}, "messages[0].role"),
        ({"prompt": "a", "with_pieces": "yes"}, "with_pieces"),
        ({"prompt": "a", "add_bos": False}, "add_bos"),
    ],
)
def test_bad_tokenize_bodies_name_the_field(client, body, field):
    response = client.post("/v1/tokenize", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"] == field


def test_a_model_may_be_named_and_must_be_the_served_one(client):
    """A model-scoped API key must name its model on every route (the Worker checks the scope)."""
    named = client.post("/v1/tokenize", json={"model": MODEL, "prompt": "Hi"})
    assert named.json()["tokens"] == client.post("/v1/tokenize", json={"prompt": "Hi"}).json()["tokens"]
    for path, body in [("/v1/tokenize", {"prompt": "Hi"}), ("/v1/detokenize", {"tokens": [2]})]:
        response = client.post(path, json={**body, "model": "gpt-4"})
        assert response.status_code == 404
        assert response.json()["error"]["field"] == "model"
