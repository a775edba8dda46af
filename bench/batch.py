"""The Batch API on the whole local stack (the official `openai` client → wrangler dev's Workflow and
Queue → the runtime on the CPU): lines per second, and the origin calls a batch whose lines repeat costs
(one per distinct line), against the same lines sent live one by one through the Worker.

Starts its own stack in a temp folder on free ports (like the e2e tests), then prints JSON. Each side gets
prompts of its own, so neither is served from the other's cache; origin calls are the runtime's own count
of engine runs (`runtime_inferences_total`).

    .venv/bin/python -m bench.batch [--lines 120] [--distinct 24] [--endpoint /v1/embeddings]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import tempfile
import time
import uuid
from pathlib import Path

import openai

from scripts.harness import free_port
from scripts.load import local_client
from scripts.local_stack import LocalStack, LocalStackConfig
from tests.e2e.conftest import INFERENCES_METRIC

KINDS = {"/v1/embeddings": "embed", "/v1/chat/completions": "generate", "/v1/completions": "generate"}
MAX_TOKENS = 8


def request_bodies(endpoint: str, model: str, lines: int, distinct: int) -> list[dict]:
    """`lines` requests cycling through `distinct` different ones (digit-free: DLP never refuses them)."""
    words = [uuid.uuid4().hex.translate(str.maketrans("0123456789", "ghijklmnop")) for _ in range(distinct)]
    if endpoint == "/v1/embeddings":
        unique = [{"model": model, "input": f"a short note about {word}"} for word in words]
    elif endpoint == "/v1/chat/completions":
        unique = [
            {
                "model": model,
                "messages": [{"role": "user", "content": f"Name {word}."}],
                "max_tokens": MAX_TOKENS,
            }
            for word in words
        ]
    else:
        unique = [{"model": model, "prompt": f"Name {word}.", "max_tokens": MAX_TOKENS} for word in words]
    return [unique[index % distinct] for index in range(lines)]


def engine_runs(stack: LocalStack, kind: str) -> float:
    with local_client(stack.runtime_url, stack.secrets["ORIGIN_TOKEN"]) as runtime:
        counts = {
            name: float(value) for name, value in INFERENCES_METRIC.findall(runtime.get("/metrics").text)
        }
    return counts.get(kind, 0.0)


def run_batch(stack: LocalStack, client: openai.OpenAI, endpoint: str, bodies: list[dict]) -> dict:
    kind = KINDS[endpoint]
    text = "\n".join(
        json.dumps({"custom_id": f"line-{i}", "method": "POST", "url": endpoint, "body": body})
        for i, body in enumerate(bodies)
    )
    before = engine_runs(stack, kind)
    started = time.perf_counter()
    upload = client.files.create(file=("bench.jsonl", io.BytesIO(text.encode())), purpose="batch")
    batch = client.batches.create(input_file_id=upload.id, endpoint=endpoint, completion_window="24h")
    lines_done_s = None
    while batch.status not in {"completed", "failed", "expired", "cancelled"}:
        time.sleep(0.25)
        batch = client.batches.retrieve(batch.id)
        counts = batch.request_counts
        if (
            lines_done_s is None
            and counts
            and counts.completed + counts.failed == len(bodies)
            and counts.total
        ):
            lines_done_s = time.perf_counter() - started
    ended_s = time.perf_counter() - started
    if batch.status != "completed" or batch.request_counts.completed != len(bodies):
        raise RuntimeError(f"the batch did not complete every line: {batch}")
    return {
        "lines": len(bodies),
        "all_lines_answered_s": round(lines_done_s or ended_s, 2),
        "batch_completed_s": round(ended_s, 2),
        "lines_per_s": round(len(bodies) / (lines_done_s or ended_s), 2),
        "lines_per_s_until_completed": round(len(bodies) / ended_s, 2),
        "origin_calls": engine_runs(stack, kind) - before,
    }


def run_live(stack: LocalStack, api_key: str, endpoint: str, bodies: list[dict]) -> dict:
    kind = KINDS[endpoint]
    before = engine_runs(stack, kind)
    started = time.perf_counter()
    with local_client(stack.worker_url, api_key) as worker:
        for body in bodies:
            response = worker.post(endpoint, json=body)
            if response.status_code != 200:
                raise RuntimeError(f"live request failed: {response.status_code} {response.text[:200]}")
    wall_s = time.perf_counter() - started
    return {
        "lines": len(bodies),
        "wall_s": round(wall_s, 2),
        "lines_per_s": round(len(bodies) / wall_s, 2),
        "origin_calls": engine_runs(stack, kind) - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=120, help="lines in the batch (120)")
    parser.add_argument("--distinct", type=int, default=24, help="distinct requests among them (24)")
    parser.add_argument("--endpoint", default="/v1/embeddings", choices=sorted(KINDS))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-batch-") as state_dir:
        stack = LocalStack(
            LocalStackConfig(Path(state_dir), free_port(), free_port(), free_port(), frozen_worker=True)
        )
        try:
            stack.start()
            # A key per side: the per-key rate limits and leases must not shape the other side's figures.
            batch_key, live_key = stack.create_api_key("bench-batch"), stack.create_api_key("bench-live")
            client = openai.OpenAI(base_url=f"{stack.worker_url}/v1", api_key=batch_key, max_retries=3)
            model = client.models.list().data[0].id
            batch = run_batch(
                stack, client, args.endpoint, request_bodies(args.endpoint, model, args.lines, args.distinct)
            )
            live = run_live(
                stack,
                live_key,
                args.endpoint,
                request_bodies(args.endpoint, model, args.lines, args.distinct),
            )
        finally:
            stack.stop()
    print(
        json.dumps(
            {
                "bench": "batch",
                "path": "openai client -> wrangler dev (Workflow, Queue, D1, R2) -> runtime (CPU)",
                "machine": {
                    "cpus": len(os.sched_getaffinity(0)),
                    "python": platform.python_version(),
                    "load_average_1_5_15": [round(load, 2) for load in os.getloadavg()],
                },
                "endpoint": args.endpoint,
                "distinct_requests": args.distinct,
                "batch": batch,
                "live_one_by_one": live,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
