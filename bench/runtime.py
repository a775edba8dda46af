"""`python -m bench.runtime`: the runtime's serving cost and throughput on the CPU, as JSON on stdout.

Same model, prompts, greedy settings and thread count for three ways of running it:
  in_process       llama-cpp-python called directly (no HTTP): the floor;
  runtime          this project's service (`python -m runtime`), OpenAI routes over loopback HTTP;
  llama_cpp_server llama-cpp-python's own server (`python -m llama_cpp.server`), same routes.
Serving overhead = how much slower the runtime is than in-process at one client. Targets: overhead <= 5%,
runtime throughput >= llama_cpp.server's at 1 and 8 concurrent clients.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import llama_cpp
import numpy as np

from runtime.model_source import resolve_model
from runtime.settings import RuntimeSettings
from scripts.harness import Service, free_port

PROMPTS = [
    "The three primary colors are",
    "Write a short poem about the sea:",
    "def fibonacci(n):",
    "The capital of France is",
    "Once upon a time, in a small village,",
    "Explain photosynthesis in one sentence:",
    "1, 2, 3, 4, 5,",
    "The best way to learn a language is",
]
TEXTS = [f"{prompt} (sample {index})" for index in range(2) for prompt in PROMPTS]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def summarise(latencies: list[float], wall_s: float, units: int, unit: str) -> dict:
    return {
        "requests": len(latencies),
        "wall_s": round(wall_s, 3),
        f"{unit}_per_s": round(units / wall_s, 2),
        "latency_ms_p50": round(percentile(latencies, 0.5) * 1000, 1),
        "latency_ms_p95": round(percentile(latencies, 0.95) * 1000, 1),
    }


def run_load(
    call: Callable[[int], tuple[int, str]], jobs: int, concurrency: int, unit: str
) -> tuple[dict, list]:
    """Run `call(i)` for i < jobs on `concurrency` threads; it returns (units produced, answer)."""
    latencies, outputs, units = [0.0] * jobs, [""] * jobs, [0] * jobs

    def timed(index: int) -> None:
        started = time.perf_counter()
        units[index], outputs[index] = call(index)
        latencies[index] = time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(timed, range(jobs)))
    return summarise(latencies, time.perf_counter() - started, sum(units), unit), outputs


def in_process(model_path: str, args: argparse.Namespace) -> dict:
    generator = llama_cpp.Llama(model_path, n_ctx=args.n_ctx, n_threads=args.threads, verbose=False)

    def generate(index: int) -> tuple[int, str]:
        generator.reset()
        answer = generator.create_completion(
            PROMPTS[index % len(PROMPTS)], max_tokens=args.max_tokens, temperature=0.0, top_k=1
        )
        return answer["usage"]["completion_tokens"], answer["choices"][0]["text"]

    generate(0)  # warm-up
    generation, texts = run_load(generate, len(PROMPTS) * args.rounds, 1, "tokens")
    generator.close()  # free it before the embedding model loads
    embedder = llama_cpp.Llama(
        model_path,
        embedding=True,
        pooling_type=llama_cpp.LLAMA_POOLING_TYPE_MEAN,
        n_ctx=args.n_ctx,
        n_batch=args.n_ctx,
        n_ubatch=args.n_ctx,
        n_threads=args.threads,
        verbose=False,
    )

    def embed(index: int) -> tuple[int, str]:
        vector = np.asarray(embedder.embed(TEXTS[index]), dtype=np.float64)
        return 1, json.dumps((vector / np.linalg.norm(vector)).astype(np.float32).tolist())

    embed(0)
    embedding, _ = run_load(embed, len(TEXTS), 1, "embeddings")
    return {"generation_c1": generation, "embeddings_c1": embedding, "_texts": texts}


def over_http(base_url: str, model: str, args: argparse.Namespace, embeddings: bool) -> dict:
    http = httpx.Client(base_url=base_url, timeout=300, limits=httpx.Limits(max_connections=16))

    def generate(index: int) -> tuple[int, str]:
        body = {
            "model": model,
            "prompt": PROMPTS[index % len(PROMPTS)],
            "max_tokens": args.max_tokens,
            "temperature": 0.0,
        }
        answer = http.post("/v1/completions", json=body)
        answer.raise_for_status()
        data = answer.json()
        return data["usage"]["completion_tokens"], data["choices"][0]["text"]

    def embed(index: int) -> tuple[int, str]:
        answer = http.post("/v1/embeddings", json={"model": model, "input": TEXTS[index]})
        answer.raise_for_status()
        return 1, ""

    figures: dict = {}
    generate(0)
    for concurrency in (1, 8):
        jobs = len(PROMPTS) * args.rounds
        figures[f"generation_c{concurrency}"], texts = run_load(generate, jobs, concurrency, "tokens")
        figures.setdefault("_texts", texts)
    if embeddings:
        embed(0)
        for concurrency in (1, 8):
            figures[f"embeddings_c{concurrency}"], _ = run_load(embed, len(TEXTS), concurrency, "embeddings")
    http.close()
    return figures


def serve(name: str, argv: list[str], port: int, ready_path: str, logs: Path) -> Service:
    service = Service(name, argv, log_path=logs / f"{name}.log")
    service.start()
    try:
        service.wait_ready(f"http://127.0.0.1:{port}{ready_path}", timeout_s=300)
    except BaseException:
        service.stop()
        raise
    return service


def runtime_figures(model_path: str, args: argparse.Namespace, logs: Path) -> dict:
    port = free_port()
    env_threads = ["--n-threads", str(args.threads)]
    argv = [
        sys.executable,
        "-m",
        "runtime",
        "--port",
        str(port),
        "--n-ctx",
        str(args.n_ctx),
        "--model-path",
        model_path,
        *env_threads,
        "--log-level",
        "warning",
    ]
    service = serve("runtime", argv, port, "/readyz", logs)
    try:
        model = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"][0]["id"]
        return over_http(f"http://127.0.0.1:{port}", model, args, embeddings=True)
    finally:
        service.stop()


def llama_cpp_server_figures(model_path: str, args: argparse.Namespace, logs: Path) -> dict:
    figures = {}
    for role, extra in (("generation", []), ("embeddings", ["--embedding", "true"])):
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            model_path,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(args.n_ctx),
            "--n_threads",
            str(args.threads),
            "--verbose",
            "false",
            *extra,
        ]
        service = serve(f"llama_cpp_server_{role}", argv, port, "/v1/models", logs)
        try:
            model = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()["data"][0]["id"]
            if role == "generation":
                figures.update(over_http(f"http://127.0.0.1:{port}", model, args, embeddings=False))
            else:
                # It has no pooling setting: for this model it returns one vector per token, un-normalised.
                figures.update(
                    {
                        k: v
                        for k, v in over_http(
                            f"http://127.0.0.1:{port}", model, args, embeddings=True
                        ).items()
                        if k.startswith("emb")
                    }
                )
        finally:
            service.stop()
    return figures


def percent_slower(baseline: float, measured: float) -> float:
    return round((baseline - measured) / baseline * 100, 2)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.runtime", description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=1, help="passes over the 8 prompts at 1 client")
    parser.add_argument("--n-ctx", type=int, default=1024)
    parser.add_argument(
        "--threads",
        type=int,
        default=max(1, (os.cpu_count() or 2) // 2),
        help="llama.cpp threads, the same for all three (llama-cpp-python's default)",
    )
    args = parser.parse_args()

    model = resolve_model(RuntimeSettings(_env_file=None))
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as logs_dir:
        logs = Path(logs_dir)
        baseline = in_process(str(model.path), args)
        ours = runtime_figures(str(model.path), args, logs)
        theirs = llama_cpp_server_figures(str(model.path), args, logs)

    expected_texts = baseline.pop("_texts")
    same_as_in_process = {
        name: figures.pop("_texts") == expected_texts
        for name, figures in (("runtime", ours), ("llama_cpp_server", theirs))
    }
    tokens, embeds = "tokens_per_s", "embeddings_per_s"
    report = {
        "bench": "runtime",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "backend": "cpu",
            "llama_cpp_python": llama_cpp.__version__,
            "threads": args.threads,
        },
        "model": {"name": model.name, "sha256": model.sha256},
        "load": {
            "prompts": len(PROMPTS),
            "max_tokens": args.max_tokens,
            "embedding_texts": len(TEXTS),
            "n_ctx": args.n_ctx,
        },
        "in_process": baseline,
        "runtime": ours,
        "llama_cpp_server": theirs,
        "serving_overhead_percent": {
            "generation_throughput": percent_slower(
                baseline["generation_c1"][tokens], ours["generation_c1"][tokens]
            ),
            "embedding_throughput": percent_slower(
                baseline["embeddings_c1"][embeds], ours["embeddings_c1"][embeds]
            ),
        },
        "runtime_vs_llama_cpp_server_throughput_ratio": {
            f"{kind}_c{c}": round(ours[f"{kind}_c{c}"][unit] / theirs[f"{kind}_c{c}"][unit], 3)
            for kind, unit in (("generation", tokens), ("embeddings", embeds))
            for c in (1, 8)
        },
        "same_text_as_in_process": same_as_in_process,
    }
    report["targets_met"] = {
        "serving_overhead_le_5_percent": report["serving_overhead_percent"]["generation_throughput"] <= 5,
        "throughput_ge_llama_cpp_server_c1": report["runtime_vs_llama_cpp_server_throughput_ratio"][
            "generation_c1"
        ]
        >= 1,
        "throughput_ge_llama_cpp_server_c8": report["runtime_vs_llama_cpp_server_throughput_ratio"][
            "generation_c8"
        ]
        >= 1,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
