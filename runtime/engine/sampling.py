"""Choosing the next token: greedy (temperature 0) or seeded sampling, and the log-probabilities reported.

Everything here is a function of the request and the logits alone (docs/runtime.md, "Sampling"):

- the randomness is a counter-based generator defined here, sha256(seed, choice, step) → a uniform double,
  so a draw depends on neither numpy's random module, nor the order requests run in, nor what else runs;
- the transforms run in llama.cpp's common order (penalties → top_k → top_p → min_p → temperature → draw),
  in float64 from the model's float32 logits, with ties always broken by the lower token id;
- temperature 0 is the highest logit, the first on ties: without penalties exactly `greedy_token`.

SAMPLER describes the algorithm for /v1/status and the fingerprint: change what a draw returns and bump its
`version` (tests/runtime/test_sampling.py pins the draws), so every cache key changes with it.
"""

import hashlib
import math
import struct
from dataclasses import dataclass

import numpy as np

SAMPLER = {
    "algorithm": "steadytext-seeded",
    "version": 1,
    "order": ["penalties", "top_k", "top_p", "min_p", "temperature", "draw"],
    "arithmetic": "float64 from the float32 logits; ties go to the lower token id",
    "random": "sha256(seed, choice, step) -> top 53 bits / 2**53",
    "draw": "inverse CDF over the kept tokens in token-id order",
    "penalty_window": 64,
    "greedy": "temperature 0: the highest (penalised) logit, the first on ties",
    "logprobs": "log-softmax of the raw logits, float64, rounded to 4 decimals",
}
# The last tokens (prompt and answer) the penalties look at: llama.cpp's default `repeat_last_n`.
PENALTY_WINDOW = SAMPLER["penalty_window"]
# Logprobs are rounded so that every value prints the same in Python and JavaScript: the Worker re-renders
# them when it replays a stream (edge/src/cache/replay.ts), and Python writes 1e-05 where JS writes 0.00001.
LOGPROB_DECIMALS = 4


@dataclass(frozen=True)
class SamplingParams:
    """A request's sampling settings; the defaults are greedy decoding without penalties."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    min_p: float = 0.0
    repeat_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0

    @property
    def penalised(self) -> bool:
        return self.repeat_penalty != 1.0 or self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    def non_default(self) -> dict[str, float]:
        """The settings that differ from greedy decoding (what an answer id must cover)."""
        defaults = SamplingParams()
        return {name: value for name, value in vars(self).items() if value != getattr(defaults, name)}


GREEDY = SamplingParams()


def greedy_token(logits: np.ndarray) -> int:
    """The highest logit, the first on ties (np.argmax's rule)."""
    return int(np.argmax(logits))


def uniform(seed: int, choice: int, step: int) -> float:
    """A uniform double in [0, 1) that depends only on its three arguments."""
    digest = hashlib.sha256(struct.pack("<QQQ", seed, choice, step)).digest()
    return (int.from_bytes(digest[:8], "little") >> 11) / float(1 << 53)


def _highest(values: np.ndarray, count: int) -> np.ndarray:
    """Indexes of the `count` highest values, highest first, ties by lower index; exact and deterministic."""
    if count >= len(values):
        chosen = np.arange(len(values))
    else:
        threshold = np.partition(values, len(values) - count)[len(values) - count]
        above = np.flatnonzero(values > threshold)
        tied = np.flatnonzero(values == threshold)[: count - len(above)]
        chosen = np.concatenate([above, tied])
    return chosen[np.lexsort((chosen, -values[chosen]))]


class Sampler:
    """One sequence's chooser: its settings, its random stream (seed, choice) and the tokens seen so far."""

    def __init__(self, params: SamplingParams, seed: int, choice: int, prompt_tokens: list[int]):
        self.params = params
        self._seed, self._choice = seed, choice
        self._recent = list(prompt_tokens[-PENALTY_WINDOW:])
        self._step = 0

    @property
    def plain_greedy(self) -> bool:
        """Temperature 0 without penalties: the choice is the argmax of the logits as given."""
        return self.params.temperature == 0 and not self.params.penalised

    def choose(self, logits: np.ndarray) -> int:
        params = self.params
        if self.plain_greedy:
            token = greedy_token(logits)
        else:
            scores = logits.astype(np.float64)
            if params.penalised:
                self._penalise(scores)
            token = greedy_token(scores) if params.temperature == 0 else self._draw(scores)
        self._step += 1
        return token

    def accept(self, token: int) -> None:
        """The token the sequence continues with (the window of the penalties)."""
        self._recent = (self._recent + [token])[-PENALTY_WINDOW:]

    def _penalise(self, scores: np.ndarray) -> None:
        if not self._recent:
            return
        tokens, counts = np.unique(np.asarray(self._recent, dtype=np.int64), return_counts=True)
        values = scores[tokens]
        penalty = self.params.repeat_penalty
        values = np.where(values <= 0, values * penalty, values / penalty)
        values -= counts * self.params.frequency_penalty + self.params.presence_penalty
        scores[tokens] = values

    def _draw(self, scores: np.ndarray) -> int:
        params = self.params
        if params.top_k == 0 and params.top_p >= 1.0 and params.min_p == 0.0:
            return self._draw_from_all(scores)
        kept = np.flatnonzero(np.isfinite(scores))
        if len(kept) == 0:
            raise ValueError("every token is forbidden")
        if 0 < params.top_k < len(kept):
            kept = np.sort(kept[_highest(scores[kept], params.top_k)])
        if params.top_p < 1.0:
            kept = np.sort(_nucleus(scores, kept, params.top_p))
        if params.min_p > 0.0:
            floor = scores[kept].max() + math.log(params.min_p)
            kept = kept[scores[kept] >= floor]
        with np.errstate(over="ignore"):
            scaled = scores[kept] / params.temperature
        peak = scaled.max()
        if not np.isfinite(peak):  # a temperature too small to divide by: the limit, greedy
            return int(kept[np.argmax(scores[kept])])
        weights = np.exp(scaled - peak)
        cumulative = np.cumsum(weights)
        target = uniform(self._seed, self._choice, self._step) * cumulative[-1]
        return int(kept[min(int(np.searchsorted(cumulative, target, side="right")), len(kept) - 1)])

    def _draw_from_all(self, scores: np.ndarray) -> int:
        """`_draw` with no filter, without gathering the kept tokens: a forbidden token's weight is
        exp(-inf) = 0 and adds nothing to the running sum, so the draw is the same bits, several times
        faster over a 262k vocabulary."""
        with np.errstate(over="ignore"):
            scaled = scores / self.params.temperature
        peak = scaled.max()
        if not np.isfinite(peak):
            if not np.isfinite(scores).any():
                raise ValueError("every token is forbidden")
            # A temperature so small that scores / temperature overflows (1e-320): inf - inf would be NaN.
            # The draw's limit as the temperature goes to 0 is the highest score, the first on ties.
            return greedy_token(scores)
        cumulative = np.cumsum(np.exp(scaled - peak))
        target = uniform(self._seed, self._choice, self._step) * cumulative[-1]
        index = int(np.searchsorted(cumulative, target, side="right"))
        if index >= len(cumulative):  # the target rounded up to the total: the last allowed token
            index = int(np.flatnonzero(np.isfinite(scores))[-1])
        return index


def _nucleus(scores: np.ndarray, kept: np.ndarray, top_p: float) -> np.ndarray:
    """The fewest highest tokens whose probability reaches top_p (llama.cpp keeps the one that crosses it).

    Only the head of the distribution is sorted: the highest 64, 512, … until their mass reaches top_p.
    The cumulative sum over a prefix is the same whichever head size found it."""
    values = scores[kept]
    weights = np.exp(values - values.max())
    total = weights.sum()
    count = 64
    while True:
        head = _highest(values, count)
        cumulative = np.cumsum(weights[head]) / total
        reached = np.flatnonzero(cumulative >= top_p)
        if len(reached) or count >= len(values):
            end = int(reached[0]) + 1 if len(reached) else len(head)
            return kept[head[:end]]
        count *= 8


@dataclass(frozen=True)
class TokenLogprob:
    """One answer token: its bytes, its log-probability, the `top` most likely alternatives (token, bytes,
    logprob) and where its text starts in the answer (code points; the Sequence sets it)."""

    token: int
    piece: bytes
    logprob: float
    top: tuple[tuple[int, bytes, float], ...]
    text_offset: int = 0


def rounded_logprob(value: float) -> float | int:
    """Rounded to LOGPROB_DECIMALS; whole numbers (0, never -0) as ints, as JavaScript prints them."""
    value = round(value, LOGPROB_DECIMALS)
    return int(value) if value == int(value) else value


def log_softmax_at(logits: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    scores = logits.astype(np.float64)
    peak = scores.max()
    return scores[tokens] - (peak + math.log(np.exp(scores - peak).sum()))


def top_logprobs(logits: np.ndarray, count: int) -> list[tuple[int, float]]:
    """The `count` most likely tokens under the raw logits, most likely first, ties by lower id."""
    if count == 0:
        return []
    tokens = _highest(logits.astype(np.float64), count)
    return list(zip(tokens.tolist(), log_softmax_at(logits, tokens).tolist(), strict=True))
