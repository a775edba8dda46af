"""The engines: one object per loaded model, driven by that model's worker thread.

Determinism rules applied here (see docs/runtime.md): each token is chosen from the logits by the request's
own sampler (runtime/engine/sampling.py: greedy, or seeded sampling), and batch invariance —
generation decodes up to `slots` requests together, one token each per step, in a way that gives every
request the bytes it gets alone (runtime/engine/slots.py); a rerank takes a slot and scores one document
per step, each prompt decoded alone (runtime/engine/relevance.py); embeddings are computed one input per
decode, so a batch is exactly its singles.
"""

import codecs
import ctypes
import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

import llama_cpp
import numpy as np
from llama_cpp._internals import LlamaModel

from runtime.engine.chat import Messages, chat_prompt_builder
from runtime.engine.grammar import GrammarConstraint
from runtime.engine.relevance import ANSWER_WORDS, Scoring, relevance_message, relevance_score
from runtime.engine.sampling import GREEDY, Sampler, TokenLogprob, log_softmax_at, top_logprobs
from runtime.engine.slots import DECODING_PATH, SlotContext, SlotOptions
from runtime.engine.stops import StopScanner

# ggml-cpu's tiled K-quant matmul serves batches of 8+ rows with a kernel whose per-row result depends on
# the other rows; off, every K-quant matmul row is one dot product (see docs/runtime.md). ggml reads this
# once, at the first matmul in the process: it is set before any model is loaded.
os.environ["GGML_CPU_TILED_MM"] = "0"


class RequestCancelled(Exception):
    """The client went away; the work was abandoned to free the model."""


@dataclass(frozen=True)
class LlamaOptions:
    n_ctx: int
    n_gpu_layers: int
    n_threads: int | None
    seed: int
    # Requests decoded together; answers do not depend on it.
    slots: int = 8


@dataclass(frozen=True)
class Generation:
    text: str
    finish_reason: str  # "stop" | "length"
    prompt_tokens: int
    completion_tokens: int
    # Every answer token's log-probability when the request asked for them (stop-string tokens included).
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True)
class Piece:
    """Text as a stream sends it, with the logprobs of the tokens produced since the previous piece."""

    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


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


class Sequence:
    """One request in a slot: its chosen tokens turned into text, stop strings, budget, cancellation.

    `sampler` chooses each token; `constraint`, when set, forbids tokens before it chooses (a grammar);
    `logprobs` is how many alternatives to report per token (None: no logprobs)."""

    def __init__(
        self,
        prompt_tokens: list[int],
        max_tokens: int,
        stops: list[str],
        budget: int,
        cancelled: threading.Event,
        on_piece: Callable[[Piece], None],
        sampler: Sampler,
        logprobs: int | None = None,
        constraint: GrammarConstraint | None = None,
    ):
        self.prompt_tokens = prompt_tokens
        self.cancelled = cancelled
        self.sampler = sampler
        self.logprobs = logprobs
        # Structured output: only tokens the grammar allows are chosen (runtime/engine/grammar.py).
        self.constraint = constraint
        self.slot = -1
        self.next_token = -1  # the sampled token the next step feeds back
        self.result: Generation | None = None
        self._budget = min(max_tokens, budget)
        self._on_piece = on_piece
        self._token_logprobs: list[TokenLogprob] = []
        self._sent_logprobs = 0
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._scanner = StopScanner(stops)
        self._text, self._emitted, self._produced = "", 0, 0

    @property
    def finished(self) -> bool:
        return self.result is not None

    def accept(
        self, token: int, piece: bytes, end_of_generation: bool, logprob: TokenLogprob | None = None
    ) -> None:
        """Take the next chosen token (`piece` is its bytes); sets `result` when the answer is complete."""
        if end_of_generation:
            self._finish("stop", flush=True)
            return
        self.sampler.accept(token)
        self._produced += 1
        previous_length = len(self._text)
        if logprob is not None:
            self._token_logprobs.append(dataclasses.replace(logprob, text_offset=previous_length))
        self._text += self._decoder.decode(piece)
        safe_end, stopped_by_string = self._scanner.scan(self._text, previous_length)
        if stopped_by_string:
            self._text = self._text[:safe_end]
        if safe_end > self._emitted:
            self._emit(self._text[self._emitted : safe_end])
            self._emitted = safe_end
        if stopped_by_string:
            self._finish("stop", flush=False)
        elif self._produced >= self._budget:
            self._finish("length", flush=True)
        else:
            self.next_token = token

    def _finish(self, finish_reason: str, flush: bool) -> None:
        if flush:  # an incomplete UTF-8 sequence at the end becomes U+FFFD, as before
            self._text += self._decoder.decode(b"", final=True)
            if len(self._text) > self._emitted:
                self._emit(self._text[self._emitted :])
        logprobs = tuple(self._token_logprobs) if self.logprobs is not None else None
        self.result = Generation(self._text, finish_reason, len(self.prompt_tokens), self._produced, logprobs)

    def _emit(self, text: str) -> None:
        fresh = tuple(self._token_logprobs[self._sent_logprobs :])
        self._sent_logprobs = len(self._token_logprobs)
        self._on_piece(Piece(text, fresh))


class GenerationEngine:
    """Decoding of up to `slots` requests at once, each answer independent of the others."""

    def __init__(self, model_path: str, options: LlamaOptions):
        self.n_ctx = options.n_ctx
        self.slots = options.slots
        llama_cpp.llama_backend_init()
        # llama.cpp logs through llama-cpp-python's logger; errors only, as `Llama(verbose=False)` does.
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
        params = llama_cpp.llama_model_default_params()
        params.n_gpu_layers = options.n_gpu_layers
        # No weight repacking: its Q4_K kernel differs between 1-3 rows (gemv) and 4+ (gemm).
        params.use_extra_bufts = DECODING_PATH["weight_repack"]
        self._model = LlamaModel(path_model=model_path, params=params, verbose=False)
        self._vocab = self._model.vocab
        self._context = SlotContext(
            self._model.model,
            SlotOptions(
                slots=options.slots,
                n_ctx_per_slot=options.n_ctx,
                # Unset: llama-cpp-python's defaults, half the CPUs per token and all for batches.
                n_threads=options.n_threads or max(1, (os.cpu_count() or 2) // 2),
                n_threads_batch=options.n_threads or (os.cpu_count() or 1),
            ),
        )
        self._free = list(range(options.slots))
        # One model thread drives the engine; the lock also guards against two apps sharing it.
        self._lock = threading.Lock()
        self._chat_prompt = chat_prompt_builder(self._model)
        self.n_vocab = self._context.n_vocab

    def tokenize_prompt(self, prompt: str) -> list[int]:
        # A raw prompt is the caller's whole input, so its special-token text is parsed (as llama.cpp's
        # server does): there is no turn of anyone else's in it to forge. Chat content is text (chat.py).
        return self._model.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)

    def tokenize_chat(self, messages: Messages) -> list[int]:
        """Prompt tokens from the model's chat format; ValueError when it has none or refuses the turns."""
        if self._chat_prompt is None:
            raise ValueError("this model has no chat template")
        return self._chat_prompt(messages)

    def grammar_constraint(self, grammar: str) -> GrammarConstraint:
        """A fresh grammar state for one sequence; GrammarRefused when llama.cpp cannot build it."""
        return GrammarConstraint(self._vocab, self.n_vocab, grammar)

    def token_bytes(self, token: int) -> bytes:
        """A token's bytes; control tokens as their text (`<bos>`), so what was parsed from text is shown.

        llama-cpp-python's own helpers cut pieces at 32 bytes; this asks again with the length llama.cpp
        says it needs."""
        size = 32
        while True:
            buffer = ctypes.create_string_buffer(size)
            length = llama_cpp.llama_token_to_piece(self._vocab, token, buffer, size, 0, True)
            if length >= 0:
                return buffer.raw[:length]
            size = -length

    def relevance_prompts(self, query: str, documents: list[str]) -> list[list[int]]:
        """Each document's relevance prompt (runtime/engine/relevance.py) as tokens."""
        return [self.tokenize_chat(relevance_message(query, document)) for document in documents]

    @functools.cached_property
    def _answer_tokens(self) -> tuple[int, int]:
        ids = [self._model.tokenize(word.encode(), add_bos=False, special=False) for word in ANSWER_WORDS]
        if any(len(tokens) != 1 for tokens in ids):
            raise RuntimeError(f"this model has no single tokens for {ANSWER_WORDS}: it cannot rerank")
        return ids[0][0], ids[1][0]

    def sequence(
        self,
        prompt_tokens: list[int],
        max_tokens: int,
        stops: list[str],
        cancelled: threading.Event,
        on_piece: Callable[[Piece], None] = lambda piece: None,
        sampler: Sampler | None = None,
        logprobs: int | None = None,
        grammar: str | None = None,
    ) -> Sequence:
        constraint = None if grammar is None else self.grammar_constraint(grammar)
        return Sequence(
            prompt_tokens,
            max_tokens,
            stops,
            self.n_ctx - len(prompt_tokens),
            cancelled,
            on_piece,
            sampler or Sampler(GREEDY, seed=0, choice=0, prompt_tokens=prompt_tokens),
            logprobs,
            constraint,
        )

    @property
    def free_slots(self) -> int:
        return len(self._free)

    def admit(self, sequence: Sequence | Scoring) -> bool:
        """Process the prompt in a free slot (alone, in fixed chunks) and take the first token; for a
        Scoring, score its first document.

        False when no slot is free (only possible when two workers share the engine)."""
        with self._lock:
            if not self._free:
                return False
            sequence.slot = self._free.pop()
            try:
                if isinstance(sequence, Scoring):
                    self._score_next(sequence)
                else:
                    self._accept(sequence, self._context.prefill(sequence.slot, sequence.prompt_tokens))
            except BaseException:
                self._release(sequence)
                raise
            if sequence.finished:
                self._release(sequence)
            return True

    def step(self, sequences: list[Sequence | Scoring]) -> None:
        """One decode step: every given unfinished sequence advances by one token, together; then each
        unfinished Scoring scores its next document (alone in its slot)."""
        with self._lock:
            decoding = [s for s in sequences if isinstance(s, Sequence) and not s.finished]
            if decoding:
                logits = self._context.step({s.slot: s.next_token for s in decoding})
                for sequence in decoding:
                    self._accept(sequence, logits[sequence.slot])
            for scoring in [s for s in sequences if isinstance(s, Scoring) and not s.finished]:
                self._score_next(scoring)
            for sequence in sequences:
                if sequence.finished and sequence.slot >= 0:
                    self._release(sequence)

    def abandon(self, sequence: Sequence | Scoring) -> None:
        """Free the slot of a sequence that will not finish (its request was cancelled)."""
        with self._lock:
            if sequence.slot >= 0:
                self._release(sequence)

    def generate(
        self,
        prompt_tokens: list[int],
        max_tokens: int,
        stops: list[str],
        cancelled: threading.Event,
        on_piece: Callable[[Piece], None] = lambda piece: None,
        sampler: Sampler | None = None,
        logprobs: int | None = None,
        grammar: str | None = None,
    ) -> Generation:
        """One request alone, start to end (what a batch of one does)."""
        sequence = self.sequence(
            prompt_tokens, max_tokens, stops, cancelled, on_piece, sampler, logprobs, grammar
        )
        if not self.admit(sequence):
            raise RuntimeError("every slot is taken")
        try:
            while not sequence.finished:
                if cancelled.is_set():
                    raise RequestCancelled()
                self.step([sequence])
        finally:
            self.abandon(sequence)
        assert sequence.result is not None
        return sequence.result

    def _accept(self, sequence: Sequence, logits: np.ndarray) -> None:
        token = self._choose(sequence, logits)
        end = llama_cpp.llama_vocab_is_eog(self._vocab, token)
        if sequence.constraint is not None and not end:
            sequence.constraint.accept(token)
        piece = b"" if end else self._piece(token)
        logprob = None
        if sequence.logprobs is not None and not end:
            logprob = self._logprob(logits, token, piece, sequence.logprobs)
        sequence.accept(token, piece, end, logprob)

    @staticmethod
    def _choose(sequence: Sequence, logits: np.ndarray) -> int:
        constraint = sequence.constraint
        if constraint is None:
            return sequence.sampler.choose(logits)
        if not sequence.sampler.plain_greedy:
            return sequence.sampler.choose(constraint.mask(logits))
        # Masking all 262k logits costs far more than asking about one token: the best token, when the
        # grammar allows it, is the best allowed one (ties included: argmax takes the first).
        token = sequence.sampler.choose(logits)
        return token if constraint.allows(token) else constraint.best_allowed(logits)

    def _piece(self, token: int) -> bytes:
        return self._model.detokenize([token])

    def _logprob(self, logits: np.ndarray, token: int, piece: bytes, count: int) -> TokenLogprob:
        """Log-softmax of the raw logits (before penalties, grammar and temperature: what the model says)."""
        chosen = float(log_softmax_at(logits, np.asarray([token]))[0])
        top = tuple((t, self._piece(t), value) for t, value in top_logprobs(logits, count))
        return TokenLogprob(token, piece, chosen, top)

    def _score_next(self, scoring: Scoring) -> None:
        yes, no = self._answer_tokens
        logits = self._context.prefill(scoring.slot, scoring.next_prompt)
        # The slot holds no sequence between turns: the next decode step must not expect a token for it.
        self._context.clear(scoring.slot)
        scoring.accept(relevance_score(logits, yes, no))

    def _release(self, sequence: Sequence | Scoring) -> None:
        if isinstance(sequence, Sequence) and sequence.constraint is not None:
            sequence.constraint.close()
        self._context.clear(sequence.slot)
        self._free.append(sequence.slot)
        sequence.slot = -1


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
