"""`python -m bench.batch_invariance`: does a sequence's greedy decode depend on what shares its batch?

The minimal reproduction behind docs/runtime.md "Batch invariance". Each prompt is decoded twice through
llama.cpp's low-level API (runtime/engine/slots.py): alone in slot 0, and in a batch where eight prompts join
one step apart, each in another slot. Per prompt it prints the first step whose logits differ bit for
bit, the largest difference there, and whether the greedy tokens diverged. Flags switch one cause at a
time; `GGML_CPU_TILED_MM=0` in the environment switches off ggml-cpu's tiled K-quant matmul.
"""

import argparse
import json
import os

import llama_cpp
import numpy as np

from runtime.config.model_source import resolve_model
from runtime.config.settings import RuntimeSettings
from runtime.engine.slots import SlotContext, SlotOptions

PROMPTS = [
    "The three primary colors are",
    "Write a short poem about the sea:",
    "def fibonacci(n):",
    "Once upon a time, in a small village far away from the noisy cities of the coast, there lived an"
    " old clockmaker who",
    "1, 2, 3, 4, 5,",
    "Explain photosynthesis in one sentence:",
    "The capital of France is",
    "Q: What is the boiling point of water at sea level?\nA:",
]


def load_model(path: str, repack: bool) -> llama_cpp.llama_model_p:
    params = llama_cpp.llama_model_default_params()
    params.n_gpu_layers = 0
    params.use_extra_bufts = repack  # weight repacking into the CPU_REPACK buffer (llama-server --no-repack)
    model = llama_cpp.llama_model_load_from_file(path.encode(), params)
    if not model:
        raise RuntimeError(f"could not load {path}")
    return model


def tokenize(model: llama_cpp.llama_model_p, text: str) -> list[int]:
    vocab = llama_cpp.llama_model_get_vocab(model)
    raw = text.encode()
    buffer = (llama_cpp.llama_token * (len(raw) + 8))()
    count = llama_cpp.llama_tokenize(vocab, raw, len(raw), buffer, len(buffer), True, True)
    return list(buffer[:count])


def decode_alone(context: SlotContext, prompt: list[int], steps: int) -> list[np.ndarray]:
    logits = [context.prefill(0, prompt)]
    for _ in range(steps - 1):
        logits.append(context.step({0: int(np.argmax(logits[-1]))})[0])
    context.clear(0)
    return logits


def decode_together(context: SlotContext, prompts: list[list[int]], steps: int) -> list[list[np.ndarray]]:
    """Prompt i joins at step i, in slot (3i + 5) mod slots, so slots and batch companions differ."""
    slots = context.options.slots
    slot_of = [(3 * index + 5) % slots for index in range(len(prompts))]
    logits: list[list[np.ndarray]] = [[] for _ in prompts]
    step = 0
    while any(len(history) < steps for history in logits):
        if step < len(prompts):
            logits[step].append(context.prefill(slot_of[step], prompts[step]))
        running = {
            slot_of[index]: int(np.argmax(history[-1]))
            for index, history in enumerate(logits)
            if history and len(history) < steps
        }
        if running:
            out = context.step(running)
            for index, history in enumerate(logits):
                if slot_of[index] in out:
                    history.append(out[slot_of[index]])
                    if len(history) == steps:
                        context.clear(slot_of[index])
        step += 1
    for slot in slot_of:
        context.clear(slot)
    return logits


def compare(alone: list[np.ndarray], together: list[np.ndarray]) -> dict:
    for step, (a, b) in enumerate(zip(alone, together, strict=True)):
        if not np.array_equal(a, b):
            tokens_a = [int(np.argmax(x)) for x in alone]
            tokens_b = [int(np.argmax(x)) for x in together]
            return {
                "first_differing_step": step,
                "max_abs_logit_diff": float(np.max(np.abs(a - b))),
                "greedy_tokens_diverge": tokens_a != tokens_b,
            }
    return {"first_differing_step": None}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch_invariance", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--steps", type=int, default=16, help="tokens generated per prompt")
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-repack", action="store_true", help="keep Q4_K weights out of the repack buffer")
    parser.add_argument("--pad", action="store_true", help="every step has `slots` rows (padding rows)")
    parser.add_argument("--unified", action="store_true", help="one KV buffer for all sequences")
    parser.add_argument("--flash-attn", action="store_true")
    args = parser.parse_args()

    llama_cpp.llama_backend_init()
    path = str(resolve_model(RuntimeSettings(_env_file=None)).path)
    model = load_model(path, repack=not args.no_repack)
    options = SlotOptions(
        slots=args.slots,
        n_ctx_per_slot=256,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        flash_attn=args.flash_attn,
        pad_decode=args.pad,
        kv_unified=args.unified,
    )
    context = SlotContext(model, options)
    prompts = [tokenize(model, text) for text in PROMPTS]
    alone = [decode_alone(context, prompt, args.steps) for prompt in prompts]
    together = decode_together(context, prompts, args.steps)
    results = [compare(a, b) for a, b in zip(alone, together, strict=True)]
    context.close()
    print(
        json.dumps(
            {
                "bench": "batch_invariance",
                "config": {
                    "repack": not args.no_repack,
                    "tiled_k_quant_matmul": os.environ.get("GGML_CPU_TILED_MM", "1") != "0",
                    "padded_fixed_shape": args.pad,
                    "kv_unified": args.unified,
                    "flash_attn": args.flash_attn,
                    "slots": args.slots,
                    "steps": args.steps,
                },
                "prompts_with_differing_logits": sum(r["first_differing_step"] is not None for r in results),
                "prompts_with_changed_answer": sum(bool(r.get("greedy_tokens_diverge")) for r in results),
                "per_prompt": results,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
