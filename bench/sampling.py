"""`python -m bench.sampling`: what choosing a token costs, per token, on logits of the bundled model's size.

Synthetic float32 logits of Gemma 3's 262,144-token vocabulary (normal, sd 3) are fed to the runtime's
Sampler (runtime/engine/sampling.py) under several settings, next to the strongest simple alternative:
numpy's own `Generator.choice` over the tempered softmax (not counter-based: its bytes depend on numpy's
generator and on call order). Prints one JSON object; milliseconds per token, median of `--tokens`.
"""

import argparse
import json
import statistics
import time

import numpy as np

from runtime.engine.sampling import Sampler, SamplingParams, top_logprobs

VOCAB = 262_144
SETTINGS = {
    "greedy": SamplingParams(),
    "temperature_0.7": SamplingParams(temperature=0.7),
    "llama_cpp_defaults": SamplingParams(
        temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.1
    ),
    "top_p_0.9": SamplingParams(temperature=0.7, top_p=0.9),
}


def per_token_ms(choose, rows: list[np.ndarray]) -> float:
    times = []
    for row in rows:
        started = time.perf_counter()
        choose(row)
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=60)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = [rng.normal(0, 3, VOCAB).astype(np.float32) for _ in range(args.tokens)]
    figures = {}
    for name, params in SETTINGS.items():
        sampler = Sampler(params, seed=42, choice=0, prompt_tokens=list(range(64)))
        figures[name] = per_token_ms(sampler.choose, rows)
    figures["logprobs_top_5"] = per_token_ms(lambda row: top_logprobs(row, 5), rows)

    numpy_rng = np.random.default_rng(42)

    def numpy_choice(row: np.ndarray) -> int:
        scaled = row.astype(np.float64) / 0.7
        weights = np.exp(scaled - scaled.max())
        return int(numpy_rng.choice(VOCAB, p=weights / weights.sum()))

    figures["numpy_generator_choice_temperature_0.7"] = per_token_ms(numpy_choice, rows)
    print(json.dumps({"vocab": VOCAB, "tokens": args.tokens, "ms_per_token": figures}, indent=2))


if __name__ == "__main__":
    main()
