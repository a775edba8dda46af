"""`python -m bench.structured`: what structured output costs, and what llama-cpp-python's own does.

For each schema the same chat prompt is decoded four ways, one at a time, and the JSON figures printed:

- `runtime`: this runtime's engine with the schema's grammar (the argmax, then the top 64, then the full
  mask; runtime/engine/grammar.py);
- `runtime_full_mask`: the same grammar, masking all 262k logits at every step (what the shortcut saves;
  the answer must be byte-identical);
- `plain`: no grammar (does the model write valid JSON when only asked to?);
- `llama_cpp_python`: llama-cpp-python's `create_chat_completion(response_format={"type": "json_object",
  "schema": ...})` on its own Llama over the same GGUF, greedy (top_k=1): its grammar sampler, its
  converter without this runtime's corrections or checks.

Each row: seconds, completion tokens, tokens/s, whether the text parses and validates against the schema.
"""

import argparse
import json
import os
import threading
import time

import llama_cpp
import numpy as np

from runtime.config.model_source import resolve_model
from runtime.config.settings import RuntimeSettings
from runtime.engine.engines import GenerationEngine
from runtime.engine.grammar import answer_problem, grammar_text
from runtime.engine.json_schema import checked_schema
from runtime.engine.models import load_models

PROMPT = "Describe the mathematician Ada Lovelace as JSON."
SCHEMAS = {
    "person": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 24},
            "born": {"type": "integer"},
            "field": {"type": "string", "enum": ["mathematics", "poetry", "engineering"]},
            "known_for": {"type": "array", "items": {"type": "string", "maxLength": 24}, "maxItems": 3},
        },
        "required": ["name", "born", "field", "known_for"],
        "additionalProperties": False,
    },
    "record_with_uuid": {
        "type": "object",
        "properties": {"id": {"type": "string", "format": "uuid"}, "alive": {"type": "boolean"}},
        "required": ["id", "alive"],
        "additionalProperties": False,
    },
}


def _row(text: str, tokens: int, seconds: float, schema: dict) -> dict:
    problem = answer_problem(text, schema)
    return {
        "seconds": round(seconds, 3),
        "completion_tokens": tokens,
        "tokens_per_s": round(tokens / seconds, 1) if seconds else None,
        "valid": problem is None,
        "problem": problem,
        "text": text,
    }


def _always_full_mask() -> None:
    """Monkeypatch: a constrained greedy step always masks all logits (no argmax or top-64 shortcut)."""

    def choose(sequence, logits: np.ndarray) -> int:
        if sequence.constraint is None:
            return sequence.sampler.choose(logits)
        return int(np.argmax(sequence.constraint.mask(logits)))

    GenerationEngine._choose = staticmethod(choose)  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    settings = RuntimeSettings(_env_file=None, n_ctx=1024)
    models = load_models(resolve_model(settings), settings)
    engine = models.generator
    prompt_tokens = engine.tokenize_chat([{"role": "user", "content": PROMPT}])
    theirs = llama_cpp.Llama(
        model_path=str(models.model.path), n_ctx=1024, verbose=False, n_threads=settings.n_threads
    )

    def ours(grammar: str | None) -> tuple[str, int, float]:
        started = time.perf_counter()
        result = engine.generate(prompt_tokens, args.max_tokens, [], threading.Event(), grammar=grammar)
        return result.text, result.completion_tokens, time.perf_counter() - started

    results: dict[str, dict] = {}
    for name, schema in SCHEMAS.items():
        grammar = grammar_text(checked_schema(schema))
        rows = {"runtime": _row(*ours(grammar), schema), "plain": _row(*ours(None), schema)}
        started = time.perf_counter()
        answer = theirs.create_chat_completion(
            messages=[{"role": "user", "content": PROMPT}],
            response_format={"type": "json_object", "schema": schema},
            max_tokens=args.max_tokens,
            temperature=0.0,
            top_k=1,
        )
        text = answer["choices"][0]["message"]["content"]
        rows["llama_cpp_python"] = _row(
            text, answer["usage"]["completion_tokens"], time.perf_counter() - started, schema
        )
        results[name] = rows
    _always_full_mask()
    for name, schema in SCHEMAS.items():
        grammar = grammar_text(checked_schema(schema))
        row = _row(*ours(grammar), schema)
        row["same_text_as_runtime"] = row["text"] == results[name]["runtime"]["text"]
        results[name]["runtime_full_mask"] = row
    print(
        json.dumps(
            {"load_average": os.getloadavg(), "max_tokens": args.max_tokens, "results": results}, indent=2
        )
    )


if __name__ == "__main__":
    main()
