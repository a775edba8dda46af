"""Temperature 0 (every request's default) is greedy decoding: the highest raw logit, the first on ties.
SAMPLER is the one home of the description of the decoder: /v1/status reports it and the fingerprint
hashes it, so a sampler change starts a new cache namespace."""

import threading

import numpy as np

from runtime.engine.fingerprint import compute_fingerprint
from runtime.engine.sampling import SAMPLER, greedy_token
from tests.runtime.conftest import runtime_settings


def generate_once(generator) -> None:
    prompt = generator.tokenize_prompt("One, two,")
    generator.generate(prompt, max_tokens=3, stops=[], cancelled=threading.Event())


def test_every_token_is_the_highest_logit(loaded_models, monkeypatch):
    generator = loaded_models.generator
    picked: list[tuple[np.ndarray, int]] = []

    def recording(logits: np.ndarray) -> int:
        token = greedy_token(logits)
        picked.append((logits, token))
        return token

    monkeypatch.setattr("runtime.engine.sampling.greedy_token", recording)
    generate_once(generator)
    assert len(picked) == 3
    for logits, token in picked:
        assert logits.dtype == np.float32  # the raw logits, no float64 round trip
        assert logits[token] == logits.max() and token == int(np.flatnonzero(logits == logits.max())[0])


def test_status_reports_the_sampler_and_the_fingerprint_covers_it(loaded_models, client, monkeypatch):
    assert client.get("/v1/status").json()["decoding"] == SAMPLER
    today = compute_fingerprint(loaded_models.model, runtime_settings()).value
    monkeypatch.setitem(SAMPLER, "version", SAMPLER["version"] + 1)
    assert compute_fingerprint(loaded_models.model, runtime_settings()).value != today
