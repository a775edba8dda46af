"""The runtime keeps the wire contract (contract/): its answers and stream events follow the schemas,
it reproduces the golden fixtures byte for byte, its errors are the vocabulary's, and each bad request of
the shared corpus gets exactly the error the Worker gives for it."""

import json
import re
from pathlib import Path

import httpx
import pytest
from jsonschema import ValidationError

from runtime.errors import ERROR_STATUS
from tests.contract import (
    ERRORS,
    PIECES_HEADER,
    ROUTES,
    bad_request_body,
    bad_requests,
    check,
    check_answer,
    check_stream,
    expected_error,
    golden_fixtures,
    limits_for,
)
from tests.runtime.conftest import TEST_SETTINGS

GOLDENS = golden_fixtures()
RUNTIME_LIMITS = limits_for(max_body_bytes=1_048_576, max_tokens_limit=TEST_SETTINGS["max_tokens_cap"])


def test_the_runtime_loads_the_one_error_vocabulary():
    assert {name: entry["status"] for name, entry in ERRORS["types"].items()} == ERROR_STATUS
    packaged = Path(__file__).resolve().parents[2] / "runtime" / "contract_errors.json"
    assert packaged.resolve() == (Path(__file__).resolve().parents[2] / "contract" / "errors.json")


def test_every_error_type_the_runtime_raises_is_in_the_vocabulary():
    source = "\n".join(path.read_text() for path in (Path(__file__).parents[2] / "runtime").glob("*.py"))
    raised = set(re.findall(r'ApiError\(\s*"([a-z_]+)"', source))
    assert raised and raised <= set(ERRORS["types"]), raised - set(ERRORS["types"])


@pytest.mark.parametrize("name", GOLDENS)
def test_golden_fixtures_follow_the_schemas(name):
    fixture = GOLDENS[name]
    route = fixture["route"]
    check(ROUTES["routes"][route]["request"], fixture["request"])
    answer = check_answer(route, fixture["answer"])
    for stream_name in ("stream", "stream_with_usage"):
        if stream_name in fixture:
            events = check_stream(route, fixture[stream_name])
            if route == "/v1/generate":  # the done event is the answer after done=true, in order
                assert json.dumps(events[-1]) == json.dumps({"done": True, **answer})
    if "pieces" in fixture:
        pieces = fixture["pieces"]
        per_choice = pieces["choices"] if isinstance(pieces, dict) and "choices" in pieces else [pieces]
        for index, choice_pieces in enumerate(per_choice):
            lengths = choice_pieces["lengths"] if isinstance(choice_pieces, dict) else choice_pieces
            assert sum(lengths) == len(_text_of(answer, index))


def _text_of(answer: dict, index: int = 0) -> str:
    if "text" in answer:
        return answer["text"]
    choice = answer["choices"][index]
    return choice["text"] if "text" in choice else choice["message"]["content"]


def test_the_schemas_refuse_the_old_drifts():
    with pytest.raises(ValidationError):  # a done event without the model (the old cached replay)
        check(
            "generate-event.json",
            {
                "done": True,
                "text": "",
                "finish_reason": "stop",
                "usage": {"prompt_tokens": 1, "completion_tokens": 0},
                "fingerprint": "0" * 32,
            },
        )
    with pytest.raises(ValidationError):  # `field msg` instead of `field: msg`
        check(
            "error.json",
            {"error": {"type": "invalid_request", "message": "prompt is required", "field": "prompt"}},
        )
    with pytest.raises(ValidationError):  # a random-looking id
        check("completion-answer.json", {**json.loads(GOLDENS["completion"]["answer"]), "id": "cmpl-1"})


@pytest.mark.parametrize("name", GOLDENS)
def test_the_runtime_answers_the_golden_bytes(base_url, name):
    """Live answers always follow the schemas; their bytes are the goldens' when the fingerprint is
    the goldens' (the same model, llama.cpp build and backend as scripts/contract_fixtures.py used)."""
    fixture = GOLDENS[name]
    assert fixture["runtime_settings"] == TEST_SETTINGS  # the settings are part of the fingerprint
    route, request = fixture["route"], fixture["request"]
    sent = {"answer": httpx.post(f"{base_url}{route}", json=request, timeout=120)}
    if "stream" in fixture:
        sent["stream"] = httpx.post(f"{base_url}{route}", json={**request, "stream": True}, timeout=120)
    if "stream_with_usage" in fixture:
        body = {**request, "stream": True, "stream_options": {"include_usage": True}}
        sent["stream_with_usage"] = httpx.post(f"{base_url}{route}", json=body, timeout=120)
    check_answer(route, sent["answer"].text)
    for stream_name in ("stream", "stream_with_usage"):
        if stream_name in sent:
            check_stream(route, sent[stream_name].text)
    if sent["answer"].headers["x-model-fingerprint"] != fixture["fingerprint"]:
        pytest.skip(f"the goldens were made under fingerprint {fixture['fingerprint']}")
    for what, response in sent.items():
        assert response.text == fixture[what], what
    if "pieces" in fixture:
        assert json.loads(sent["answer"].headers[PIECES_HEADER]) == fixture["pieces"]
    if "document_tokens" in fixture:
        tokens_header = ROUTES["document_tokens_header"]
        assert json.loads(sent["answer"].headers[tokens_header]) == fixture["document_tokens"]


def test_pieces_header_splits_the_text_as_the_stream_does(base_url):
    request = {"prompt": "日本の首都は", "max_tokens": 12}
    plain = httpx.post(f"{base_url}/v1/generate", json=request, timeout=120)
    stream = httpx.post(f"{base_url}/v1/generate", json={**request, "stream": True}, timeout=120)
    events = check_stream("/v1/generate", stream.text)
    pieces = [event["token"] for event in events[:-1]]
    assert json.loads(plain.headers[PIECES_HEADER]) == [len(piece) for piece in pieces]
    assert "".join(pieces) == plain.json()["text"]


@pytest.mark.parametrize("case", bad_requests("runtime"), ids=lambda case: case["name"])
def test_bad_request_corpus(base_url, case):
    raw = bad_request_body(case, RUNTIME_LIMITS)
    headers = {"content-type": case["content_type"]} if "content_type" in case else {}
    response = httpx.request(
        case["method"], f"{base_url}{case['route']}", content=raw, headers=headers, timeout=60
    )
    assert response.status_code == case["status"], response.text[:300]
    assert response.json() == expected_error(case, RUNTIME_LIMITS)
    check("error.json", response.json())
