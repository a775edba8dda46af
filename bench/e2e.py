"""The whole local request path (client → Worker in workerd → runtime on the CPU): latency and throughput.

Starts its own stack in a temp folder on free ports (like the e2e tests), then prints JSON:
miss and hit latency p50/p95 through the Worker (and the same misses straight to the runtime, to show
what the Worker adds), and hit throughput at 1, 8 and 32 concurrent clients.

    .venv/bin/python -m bench.e2e [--misses 16] [--hits 200] [--throughput-requests 400]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from scripts.harness import free_port
from scripts.load import PlannedRequest, local_client, send_all
from scripts.local_stack import LocalStack, LocalStackConfig

MAX_TOKENS = 8
CONCURRENCY_LEVELS = (1, 8, 32)


def percentiles_ms(latencies_s: list[float]) -> dict[str, float]:
    cuts = statistics.quantiles(latencies_s, n=100, method="inclusive")
    return {"p50_ms": round(cuts[49] * 1000, 2), "p95_ms": round(cuts[94] * 1000, 2), "n": len(latencies_s)}


def timed_post(client: httpx.Client, path: str, body: dict, expected_cache: str | None) -> float:
    started = time.perf_counter()
    response = client.post(path, json=body)
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or (expected_cache and response.headers.get("x-cache") != expected_cache):
        raise RuntimeError(
            f"unexpected answer {response.status_code} {response.headers} {response.text[:200]}"
        )
    return elapsed


def measure(stack: LocalStack, misses: int, hits: int, throughput_requests: int) -> dict:
    """Each phase gets its own API key: the per-key rate limit (600 a minute) must not shape the figures."""
    bodies = [
        {
            "prompt": f"Name one fact about the number {index}. ({uuid.uuid4().hex[:8]})",
            "max_tokens": MAX_TOKENS,
        }
        for index in range(misses)
    ]
    with (
        local_client(stack.worker_url, stack.create_api_key("bench-latency")) as worker,
        local_client(stack.runtime_url, stack.secrets["ORIGIN_TOKEN"]) as runtime,
    ):
        miss_latencies = [timed_post(worker, "/v1/generate", body, "MISS") for body in bodies]
        direct_latencies = [timed_post(runtime, "/v1/generate", body, None) for body in bodies]
        hit_latencies = [
            timed_post(worker, "/v1/generate", bodies[index % misses], "HIT") for index in range(hits)
        ]

    throughput = {}
    for clients in CONCURRENCY_LEVELS:
        bearer = {"Authorization": f"Bearer {stack.create_api_key(f'bench-{clients}-clients')}"}
        planned = [
            PlannedRequest("/v1/generate", bodies[index % misses], bearer)
            for index in range(throughput_requests)
        ]
        outcomes, wall_s = send_all(stack.worker_url, planned, concurrency=clients)
        throughput[f"{clients}_clients"] = {
            "requests": throughput_requests,
            "statuses": dict(collections.Counter(str(outcome.status) for outcome in outcomes)),
            "dev_proxy_retries": sum(outcome.dev_proxy_retries for outcome in outcomes),
            "requests_per_s": round(throughput_requests / wall_s, 1),
            **percentiles_ms([outcome.latency_s for outcome in outcomes]),
        }

    return {
        "bench": "e2e",
        "path": "client -> wrangler dev (workerd, local D1/KV/DO) -> runtime (llama-cpp-python, CPU)",
        "machine": {"cpus": len(os.sched_getaffinity(0)), "python": platform.python_version()},
        "max_tokens": MAX_TOKENS,
        "miss_latency": percentiles_ms(miss_latencies),
        "runtime_direct_latency": percentiles_ms(direct_latencies),
        "hit_latency": percentiles_ms(hit_latencies),
        "hit_throughput": throughput,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", type=int, default=16, help="distinct prompts, each one miss (16)")
    parser.add_argument("--hits", type=int, default=200, help="sequential cache hits (200)")
    parser.add_argument(
        "--throughput-requests",
        type=int,
        default=400,
        help="requests per concurrency level (400; at most 600, the per-key limit a minute)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as state_dir:
        stack = LocalStack(
            LocalStackConfig(Path(state_dir), free_port(), free_port(), free_port(), frozen_worker=True)
        )
        try:
            stack.start()
            figures = measure(stack, args.misses, args.hits, args.throughput_requests)
        finally:
            stack.stop()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
