"""GREEDY is the one home of the decoding settings: the decoder runs exactly what /v1/status reports and
the fingerprint hashes."""

import inspect
import threading

import llama_cpp

from runtime.engine import GREEDY, decoder_arguments


class RecordingLlama:
    """Forwards to the real Llama and keeps the keyword arguments of every `generate` call."""

    def __init__(self, llama: llama_cpp.Llama):
        self._llama = llama
        self.generate_calls: list[dict] = []

    def generate(self, tokens, **kwargs):
        self.generate_calls.append(kwargs)
        return self._llama.generate(tokens, **kwargs)

    def __getattr__(self, name):
        return getattr(self._llama, name)


def sampling_of(call: dict) -> dict:
    return {name: value for name, value in call.items() if name != "reset"}


def generate_once(generator) -> None:
    prompt = generator.tokenize_prompt("One, two,")
    generator.generate(prompt, max_tokens=3, stops=[], seed=42, cancelled=threading.Event())


def test_the_decoder_receives_exactly_greedy(loaded_models, monkeypatch):
    generator = loaded_models.generator
    recording = RecordingLlama(generator._llama)
    monkeypatch.setattr(generator, "_llama", recording)
    generate_once(generator)
    (call,) = recording.generate_calls
    assert sampling_of(call) == decoder_arguments(GREEDY)
    assert sampling_of(call)["repeat_penalty"] == GREEDY["repeat_penalty"]
    assert call["temp"] == GREEDY["temperature"]


def test_a_change_to_greedy_reaches_the_decoder(loaded_models, monkeypatch):
    """No second copy: whatever GREEDY holds is what the decoder gets."""
    generator = loaded_models.generator
    recording = RecordingLlama(generator._llama)
    monkeypatch.setattr(generator, "_llama", recording)
    monkeypatch.setitem(GREEDY, "repeat_penalty", 1.3)
    generate_once(generator)
    assert sampling_of(recording.generate_calls[0])["repeat_penalty"] == 1.3


def test_every_greedy_setting_is_a_llama_generate_parameter():
    parameters = inspect.signature(llama_cpp.Llama.generate).parameters
    assert set(decoder_arguments(GREEDY)) <= set(parameters)
