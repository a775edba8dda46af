"""The sampler (runtime/engine/sampling.py) on synthetic logits: seeded, exact, in llama.cpp's order."""

import json
import math

import numpy as np
import pytest

from runtime.engine.sampling import (
    GREEDY,
    SAMPLER,
    Sampler,
    SamplingParams,
    greedy_token,
    rounded_logprob,
    top_logprobs,
    uniform,
)
from runtime.http.logprobs import js_key_order

VOCAB = 2000


def logits(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, VOCAB).astype(np.float32)


def draws(params: SamplingParams, seed: int, choice: int = 0, steps: int = 40, prompt=(1, 2, 3)) -> list[int]:
    sampler = Sampler(params, seed, choice, list(prompt))
    tokens = []
    for step in range(steps):
        token = sampler.choose(logits(step))
        sampler.accept(token)
        tokens.append(token)
    return tokens


WARM = SamplingParams(temperature=0.9)


def test_the_same_seed_gives_the_same_tokens():
    assert draws(WARM, seed=7) == draws(WARM, seed=7)


def test_different_seeds_and_choices_give_different_tokens():
    assert draws(WARM, seed=7) != draws(WARM, seed=8)
    assert draws(WARM, seed=7, choice=0) != draws(WARM, seed=7, choice=1)


def test_the_draws_are_pinned():
    """A change to what a draw returns must bump SAMPLER["version"] (it changes every cache key)."""
    assert SAMPLER["version"] == 1
    params = SamplingParams(temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1)
    assert draws(params, seed=42, steps=8) == PINNED_DRAWS
    assert uniform(42, 0, 0) == PINNED_UNIFORM
    # Without filters the draw skips gathering the kept tokens; a forbidden token still weighs nothing.
    assert draws(SamplingParams(temperature=0.7), seed=42, steps=8) == PINNED_UNFILTERED
    sampler, masked = Sampler(SamplingParams(temperature=1.3), 3, 2, []), []
    for step in range(8):
        row = logits(step)
        row[:1500] = -np.inf
        masked.append(sampler.choose(row))
        sampler.accept(masked[-1])
    assert masked == PINNED_MASKED


PINNED_DRAWS = [219, 860, 975, 1966, 1138, 1361, 1467, 828]
PINNED_UNFILTERED = [219, 860, 975, 1966, 1138, 1193, 1467, 828]
PINNED_MASKED = [1584, 1533, 1827, 1798, 1965, 1712, 1815, 1508]
PINNED_UNIFORM = 0.17139412765850226


def test_uniform_is_in_the_unit_interval_and_spread():
    values = [uniform(1, 0, step) for step in range(4000)]
    assert all(0 <= value < 1 for value in values)
    assert abs(np.mean(values) - 0.5) < 0.02
    assert len(set(values)) == len(values)


def test_temperature_zero_is_greedy_exactly():
    assert draws(GREEDY, seed=1) == [greedy_token(logits(step)) for step in range(40)]
    assert draws(GREEDY, seed=1) == draws(GREEDY, seed=2)


def test_top_k_one_is_greedy_at_any_temperature():
    hot = SamplingParams(temperature=2.0, top_k=1)
    assert draws(hot, seed=3) == draws(GREEDY, seed=3)


def test_min_p_one_and_tiny_top_p_are_greedy():
    assert draws(SamplingParams(temperature=1.5, min_p=1.0), seed=4) == draws(GREEDY, seed=4)
    assert draws(SamplingParams(temperature=1.5, top_p=1e-9), seed=4) == draws(GREEDY, seed=4)


@pytest.mark.parametrize("filters", [{}, {"top_k": 50}, {"top_p": 0.9}, {"min_p": 0.01}])
def test_a_temperature_too_small_to_divide_by_is_greedy(filters):
    """logits / 1e-320 overflows to infinity (inf - inf is NaN): the draw's limit as the temperature goes
    to 0 is the greedy token, not an error and not a token chosen by NaN comparisons."""
    tiny = SamplingParams(temperature=1e-320, **filters)
    with np.errstate(over="ignore", invalid="ignore"):
        assert draws(tiny, seed=5) == draws(GREEDY, seed=5)
    negative = np.full(VOCAB, -3.0, dtype=np.float32)
    negative[7] = -1.0  # every score / 1e-320 is -inf
    with np.errstate(over="ignore", invalid="ignore"):
        assert Sampler(tiny, 5, 0, []).choose(negative) == 7


def test_ties_go_to_the_lower_token_id():
    flat = np.zeros(VOCAB, dtype=np.float32)
    assert Sampler(SamplingParams(temperature=1.0, top_k=1), 0, 0, []).choose(flat) == 0
    assert Sampler(GREEDY, 0, 0, []).choose(flat) == 0


def empirical(params: SamplingParams, scores: np.ndarray, samples: int = 4000) -> np.ndarray:
    counts = np.zeros(len(scores))
    for seed in range(samples):
        counts[Sampler(params, seed, 0, []).choose(scores)] += 1
    return counts / samples


def test_draws_follow_the_tempered_softmax():
    scores = np.log(np.array([0.5, 0.3, 0.15, 0.05], dtype=np.float32))
    frequencies = empirical(SamplingParams(temperature=1.0), scores)
    assert np.allclose(frequencies, [0.5, 0.3, 0.15, 0.05], atol=0.03)
    # Temperature 0.5 squares the probabilities (then renormalises).
    squared = np.array([0.25, 0.09, 0.0225, 0.0025]) / 0.365
    assert np.allclose(empirical(SamplingParams(temperature=0.5), scores), squared, atol=0.03)


def test_top_k_top_p_and_min_p_cut_the_tail():
    scores = np.log(np.array([0.4, 0.3, 0.2, 0.1], dtype=np.float32))
    assert set(np.flatnonzero(empirical(SamplingParams(temperature=1.0, top_k=2), scores, 800))) == {0, 1}
    # Top-p keeps the fewest tokens reaching 0.65: 0.4 + 0.3.
    assert set(np.flatnonzero(empirical(SamplingParams(temperature=1.0, top_p=0.65), scores, 800))) == {0, 1}
    # Min-p 0.4 keeps tokens with at least 0.4 × 0.4 = 0.16.
    assert set(np.flatnonzero(empirical(SamplingParams(temperature=1.0, min_p=0.4), scores, 800))) == {
        0,
        1,
        2,
    }


def test_the_order_is_top_p_before_temperature():
    """llama.cpp's order: the nucleus is taken on the untempered distribution."""
    scores = np.log(np.array([0.6, 0.3, 0.1], dtype=np.float32))
    kept = np.flatnonzero(empirical(SamplingParams(temperature=2.0, top_p=0.85), scores, 800))
    assert set(kept) == {0, 1}


def test_penalties_follow_llama_cpp():
    scores = np.array([2.0, -2.0, 1.0, 0.5], dtype=np.float32)
    params = SamplingParams(repeat_penalty=2.0, presence_penalty=0.25, frequency_penalty=0.5)
    sampler = Sampler(params, 0, 0, [0, 0, 1])
    penalised = scores.astype(np.float64)
    sampler._penalise(penalised)
    # positive logits are divided, negative ones multiplied; then count × frequency + presence
    assert penalised.tolist() == [2.0 / 2 - 2 * 0.5 - 0.25, -2.0 * 2 - 0.5 - 0.25, 1.0, 0.5]
    # At temperature 0 the penalised argmax is taken: token 2 now beats token 0.
    assert sampler.choose(scores) == 2


def test_the_penalty_window_is_the_last_sixty_four_tokens():
    scores = np.array([1.0, 0.9, 0, 0, 0, 0], dtype=np.float32)
    params = SamplingParams(repeat_penalty=2.0)
    assert Sampler(params, 0, 0, [0] + [5] * 64).choose(scores) == 0
    assert Sampler(params, 0, 0, [5] * 63 + [0]).choose(scores) == 1


def test_a_masked_token_is_never_drawn():
    scores = logits()
    scores[:1990] = -np.inf
    sampler = Sampler(SamplingParams(temperature=2.0), 0, 0, [])
    assert all(sampler.choose(scores) >= 1990 for _ in range(50))


def test_top_logprobs_are_the_log_softmax_of_the_raw_logits():
    scores = np.log(np.array([0.1, 0.6, 0.3], dtype=np.float32))
    top = top_logprobs(scores, 2)
    assert [token for token, _ in top] == [1, 2]
    assert [math.exp(value) for _, value in top] == pytest.approx([0.6, 0.3], rel=1e-6)


@pytest.mark.parametrize(
    ("value", "written"),
    [
        (-0.0, "0"),
        (-1e-5, "0"),
        (-0.00005, "-0.0001"),
        (-2.0, "-2"),
        (-0.123456, "-0.1235"),
        (-12.3, "-12.3"),
    ],
)
def test_rounded_logprobs_print_as_javascript_prints_them(value, written):
    assert json.dumps(rounded_logprob(value)) == written


def test_keys_are_ordered_as_a_javascript_object_orders_them():
    ordered = js_key_order([(" a", -1), ("12", -2), ("b", -3), ("3", -4), ("03", -5), ("3", -6)])
    assert list(ordered) == ["3", "12", " a", "b", "03"]
    assert ordered["3"] == -4
