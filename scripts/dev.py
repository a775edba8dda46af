"""`make dev`: the whole request path on this machine, no cloud account needed.

Migrates the local D1 to the current schema, creates (once) a local API key, starts the runtime on the
CPU and the Worker under `wrangler dev` wired to it, waits for both, prints a curl example, and stops
both on Ctrl-C or SIGTERM. State (D1/KV/DO, secrets, key, logs) persists in `.local/` between runs.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import NoReturn

from scripts.harness import HarnessError, log_tail
from scripts.local_stack import REPO_ROOT, LocalStack, LocalStackConfig

API_KEY_NAME = "local-dev"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="make dev", description=__doc__.splitlines()[0])
    parser.add_argument("--runtime-port", type=int, default=8000, help="runtime port on 127.0.0.1 (8000)")
    parser.add_argument("--worker-port", type=int, default=8787, help="Worker port on 127.0.0.1 (8787)")
    parser.add_argument("--inspector-port", type=int, default=9229, help="Worker devtools port (9229)")
    parser.add_argument("--state-dir", type=Path, default=REPO_ROOT / ".local", help="local state (.local/)")
    return parser.parse_args(argv)


def stop_on_signals() -> None:
    """Ctrl-C, SIGTERM and SIGHUP all take the clean path. SIGINT is set too because a shell starts
    background jobs with it ignored, and Python then never turns it into KeyboardInterrupt."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)


def local_api_key(stack: LocalStack, had_state: bool) -> str:
    """The key made on the first run, reused while its stores exist (`make clean` removes both)."""
    key_path = stack.config.state_dir / "api-key"
    if had_state and key_path.exists():
        return key_path.read_text().strip()
    key = stack.create_api_key(API_KEY_NAME)
    key_path.touch(mode=0o600)
    key_path.write_text(key + "\n")
    return key


def curl_example(stack: LocalStack, api_key: str) -> str:
    return (
        f"curl -s {stack.worker_url}/v1/generate \\\n"
        f"  -H 'Authorization: Bearer {api_key}' -H 'Content-Type: application/json' \\\n"
        """  -d '{"prompt": "Write a haiku about determinism.", "max_tokens": 32}'"""
    )


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def watch(stack: LocalStack) -> NoReturn:
    """Block until Ctrl-C; fail loudly if either service dies on its own."""
    while True:
        for service in (stack.runtime, stack.worker):
            if not service.running:
                raise HarnessError(
                    f"{service.name} stopped unexpectedly; log: {service.log_path}\n"
                    f"{log_tail(service.log_path)}"
                )
        time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    stack = LocalStack(
        LocalStackConfig(
            state_dir=args.state_dir.resolve(),
            runtime_port=args.runtime_port,
            worker_port=args.worker_port,
            inspector_port=args.inspector_port,
        )
    )
    try:
        had_state = stack.persist_dir.exists()
        stack.start(announce=step)
        api_key = local_api_key(stack, had_state)
        print(f"\nReady. Local API key: {api_key}\nTry:\n\n{curl_example(stack, api_key)}\n", flush=True)
        print("Ctrl-C stops both; state stays in", stack.config.state_dir, flush=True)
        watch(stack)
    except KeyboardInterrupt:
        step("stopping")
        return 0
    except HarnessError as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        return 1
    finally:
        # A second Ctrl-C must not cut the shutdown short and leave workerd holding the port.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
