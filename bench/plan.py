"""`python -m bench.plan`: wall time of the offline plan per stack, as JSON on stdout.

Each stack is planned as CI runs it, `python -m infra.plan --stack S --json --policy` in a fresh process
(imports, wrangler's Worker build, the program under mocks, the policy pack), `--repeat` times; plus, in
one process, the program run alone once the Worker bundle is built (what a second plan in the same process
costs, e.g. `--diff OTHER_STACK`).

    .venv/bin/python -m bench.plan [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from infra import REPO_ROOT
from infra.plan.evaluate import evaluate_stack, stack_names, worker_bundle


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def cli_seconds(stack: str) -> float:
    def run() -> None:
        result = subprocess.run(
            [sys.executable, "-m", "infra.plan", "--stack", stack, "--json", "--policy"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode not in (0, 3):  # 3: mandatory policy violations, still a complete plan
            raise SystemExit(f"plan of {stack} failed:\n{result.stderr}")

    return timed(run)


def summary(samples: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(samples), 2),
        "min_s": round(min(samples), 2),
        "max_s": round(max(samples), 2),
        "n": len(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="fresh-process plans per stack")
    repeat = parser.parse_args().repeat
    stacks = stack_names()
    cli = {stack: summary([cli_seconds(stack) for _ in range(repeat)]) for stack in stacks}
    bundle_s = timed(worker_bundle)
    evaluate_stack(stacks[0])  # first run in a process also imports the program's lazy modules
    in_process = {
        stack: summary([timed(lambda s=stack: evaluate_stack(s)) for _ in range(repeat)]) for stack in stacks
    }
    print(
        json.dumps(
            {
                "bench": "offline_plan",
                "cli_wall_per_stack": cli,
                "worker_bundle_build_s": round(bundle_s, 2),
                "program_under_mocks_per_stack": in_process,
                "resources_per_stack": {
                    stack: len(evaluate_stack(stack).plan["resources"]) for stack in stacks
                },
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
