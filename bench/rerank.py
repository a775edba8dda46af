"""`python -m bench.rerank`: what a long rerank does to a generation that shares the model.

The runtime runs a rerank as a Scoring in a slot that scores one document per decode step
(runtime/engine/relevance.py), so a generation admitted next to it keeps getting a token every step. The
strongest simple alternative scores the whole list in one turn of the model thread (as one job), and the
generation waits for all of it. Both run here on the real engine, in-process, with the same requests:
it prints, per strategy, when the generation and the rerank finished (seconds from the start) and
whether every score and the generated tokens are the same bits in both (they must be: each document's
prompt is decoded alone either way).
"""

import argparse
import json
import os
import threading
import time

from runtime.config.model_source import resolve_model
from runtime.config.settings import RuntimeSettings
from runtime.engine.engines import GenerationEngine, LlamaOptions
from runtime.engine.relevance import Scoring

QUERY = "Which sentence describes a harbour town in the morning?"
TOPICS = ["fishing boats", "gulls over nets", "a baker's oven", "tax law", "a chess opening", "volcanoes"]
PROMPT = "The harbour town woke slowly. Fishing boats"


def documents(count: int) -> list[str]:
    return [
        f"A sentence about {TOPICS[i % len(TOPICS)]}, variant {chr(97 + i % 26)}{i // 26}."
        for i in range(count)
    ]


def run(engine: GenerationEngine, prompts: list[list[int]], max_tokens: int, interleaved: bool) -> dict:
    never = threading.Event()
    scoring = Scoring(prompts, never)
    generation = engine.sequence(engine.tokenize_prompt(PROMPT), max_tokens, [], never)
    started = time.perf_counter()
    finished: dict[str, float] = {}
    if not interleaved:  # the whole list in one turn, then the generation
        engine.admit(scoring)
        while not scoring.finished:
            engine.step([scoring])
        finished["rerank"] = time.perf_counter() - started
    else:
        engine.admit(scoring)
    engine.admit(generation)
    running = [s for s in (scoring, generation) if not s.finished]
    while running:
        engine.step(running)
        for name, sequence in (("rerank", scoring), ("generation", generation)):
            if sequence.finished and name not in finished:
                finished[name] = time.perf_counter() - started
        running = [s for s in running if not s.finished]
    return {
        "finished_s": {k: round(v, 3) for k, v in finished.items()},
        "scores": scoring.result,
        "text": generation.result.text,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--documents", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=24)
    args = parser.parse_args()
    settings = RuntimeSettings(_env_file=None)
    options = LlamaOptions(
        n_ctx=settings.n_ctx,
        n_gpu_layers=settings.n_gpu_layers,
        n_threads=settings.n_threads,
        seed=42,
        slots=2,
    )
    engine = GenerationEngine(str(resolve_model(settings).path), options)
    prompts = engine.relevance_prompts(QUERY, documents(args.documents))
    run(engine, prompts[:2], 2, interleaved=True)  # warm-up
    load_before = os.getloadavg()[0]
    one_per_step = run(engine, prompts, args.max_tokens, interleaved=True)
    whole_list = run(engine, prompts, args.max_tokens, interleaved=False)
    print(
        json.dumps(
            {
                "documents": args.documents,
                "prompt_tokens_per_document": round(sum(map(len, prompts)) / len(prompts), 1),
                "generation_max_tokens": args.max_tokens,
                "one_document_per_step": one_per_step["finished_s"],
                "whole_list_in_one_turn": whole_list["finished_s"],
                "same_scores_and_text": one_per_step["scores"] == whole_list["scores"]
                and one_per_step["text"] == whole_list["text"],
                "load_avg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                "cpus": os.cpu_count(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
