"""The engines: one object per loaded model that owns its `Llama` and runs one sequence at a time.

Determinism rules applied here (see docs/runtime.md): greedy decoding (temperature 0, top_k 1), the KV
state reset before every request so a cached prefix can never change the batch shapes and therefore the
logits, and embeddings computed one input per decode so a batch is exactly its singles.
"""

import codecs
import threading
from collections.abc import Callable
from dataclasses import dataclass

import llama_cpp
import numpy as np

from runtime.chat import Messages, chat_prompt_builder
from runtime.stops import StopScanner

# What the decoder does for every request: passed to `Llama.generate` as is (decoder_arguments), reported
# on /v1/status and hashed into the fingerprint, so what is reported is what runs. The names are the
# status/fingerprint ones (renaming one would change every fingerprint); LLAMA_NAMES maps them to llama's.
GREEDY = {"temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0}
LLAMA_NAMES = {"temperature": "temp"}


def decoder_arguments(sampling: dict[str, float]) -> dict[str, float]:
    """`sampling` as the keyword arguments of `Llama.generate`."""
    return {LLAMA_NAMES.get(name, name): value for name, value in sampling.items()}


class RequestCancelled(Exception):
    """The client went away; the work was abandoned to free the model."""


@dataclass(frozen=True)
class LlamaOptions:
    n_ctx: int
    n_gpu_layers: int
    n_threads: int | None
    seed: int


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int


def _load(model_path: str, options: LlamaOptions, **extra: object) -> llama_cpp.Llama:
    return llama_cpp.Llama(
        model_path=model_path,
        n_ctx=options.n_ctx,
        n_gpu_layers=options.n_gpu_layers,
        n_threads=options.n_threads,
        n_threads_batch=options.n_threads,
        seed=options.seed,
        verbose=False,
        **extra,
    )


class GenerationEngine:
    def __init__(self, model_path: str, options: LlamaOptions):
        self.n_ctx = options.n_ctx
        self._llama = _load(model_path, options)
        # Requests are queued per model already; the lock also guards against two apps sharing an engine.
        self._lock = threading.Lock()
        self._chat_prompt = chat_prompt_builder(self._llama)

    def tokenize_prompt(self, prompt: str) -> list[int]:
        # A raw prompt is the caller's whole input, so its special-token text is parsed (as llama.cpp's
        # server does): there is no turn of anyone else's in it to forge. Chat content is text (chat.py).
        return self._llama.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)

    def tokenize_chat(self, messages: Messages) -> list[int]:
        """Prompt tokens from the model's chat format; ValueError when it has none or refuses the turns."""
        if self._chat_prompt is None:
            raise ValueError("this model has no chat template")
        return self._chat_prompt(messages)

    def generate(
        self,
        prompt_tokens: list[int],
        max_tokens: int,
        stops: list[str],
        seed: int,
        cancelled: threading.Event,
        on_text: Callable[[str], None] = lambda text: None,
    ) -> Generation:
        """Greedy-decode after `prompt_tokens`; `on_text` receives the answer in order, piece by piece."""
        with self._lock:
            llama = self._llama
            llama.reset()
            llama.set_seed(seed)
            budget = min(max_tokens, self.n_ctx - len(prompt_tokens))
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            scanner = StopScanner(stops)
            text, emitted, produced = "", 0, 0
            finish_reason, stopped_by_string = "length", False
            tokens = llama.generate(prompt_tokens, reset=True, **decoder_arguments(GREEDY))
            try:
                for token in tokens:
                    if cancelled.is_set():
                        raise RequestCancelled()
                    if llama_cpp.llama_vocab_is_eog(llama._model.vocab, token):
                        finish_reason = "stop"
                        break
                    produced += 1
                    previous_length = len(text)
                    text += decoder.decode(llama.detokenize([token]))
                    safe_end, stopped_by_string = scanner.scan(text, previous_length)
                    if stopped_by_string:
                        text, finish_reason = text[:safe_end], "stop"
                    if safe_end > emitted:
                        on_text(text[emitted:safe_end])
                        emitted = safe_end
                    if stopped_by_string or produced >= budget:
                        break
            finally:
                tokens.close()
            if not stopped_by_string:
                text += decoder.decode(b"", final=True)
                if len(text) > emitted:
                    on_text(text[emitted:])
            return Generation(text, finish_reason, len(prompt_tokens), produced)


class EmbeddingEngine:
    def __init__(self, model_path: str, options: LlamaOptions):
        # One sequence must fit one micro-batch for mean pooling, so the batch sizes equal the context.
        self.n_ctx = options.n_ctx
        self._llama = _load(
            model_path,
            options,
            embedding=True,
            pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
            n_batch=options.n_ctx,
            n_ubatch=options.n_ctx,
        )
        self.dim = self._llama.n_embd()
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        # The same tokenisation `Llama.embed` applies.
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=True, special=False))

    def embed(self, texts: list[str], cancelled: threading.Event) -> list[np.ndarray]:
        """One L2-normalised float32 vector per text, each from its own decode."""
        vectors = []
        with self._lock:
            for text in texts:
                if cancelled.is_set():
                    raise RequestCancelled()
                pooled = np.asarray(self._llama.embed(text), dtype=np.float64)
                norm = np.linalg.norm(pooled)
                vectors.append((pooled / norm if norm > 0 else pooled).astype(np.float32))
        return vectors
