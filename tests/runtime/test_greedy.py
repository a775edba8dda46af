"""GREEDY is the one home of the decoding settings: the decoder runs exactly what /v1/status reports and
the fingerprint hashes, and refuses to run settings it does not implement."""

import threading

import numpy as np
import pytest

from runtime.engine.engines import GREEDY, greedy_token


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

    monkeypatch.setattr("runtime.engine.engines.greedy_token", recording)
    generate_once(generator)
    assert len(picked) == 3
    for logits, token in picked:
        assert logits[token] == logits.max() and token == int(np.flatnonzero(logits == logits.max())[0])


def test_greedy_is_temperature_zero_top_k_one_without_penalties():
    assert GREEDY == {"temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0}


def test_a_change_to_greedy_is_refused_not_ignored(loaded_models, monkeypatch):
    """No second copy: a GREEDY the decoder does not implement stops it instead of being misreported."""
    monkeypatch.setitem(GREEDY, "repeat_penalty", 1.3)
    with pytest.raises(RuntimeError, match="repeat_penalty"):
        generate_once(loaded_models.generator)
