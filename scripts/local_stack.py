"""The whole request path on one machine: the runtime on the CPU and the Worker under `wrangler dev`.

One `LocalStack` owns a state folder (local D1/KV/DO, generated secrets, logs) and three ports
(runtime, Worker, Worker devtools).
`make dev` uses it with `.local/`; the end-to-end tests and `bench/e2e.py` with a fresh temp folder.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from infra.worker_bundle import BUILD_COMMAND, build_env, offline_env
from scripts.harness import HarnessError, Service, ensure_port_free, run_step

REPO_ROOT = Path(__file__).resolve().parent.parent
EDGE_DIR = REPO_ROOT / "edge"
WRANGLER = EDGE_DIR / "node_modules" / ".bin" / "wrangler"
KEYS_CLI = EDGE_DIR / "scripts" / "keys.mjs"

OFFLINE_ENV = offline_env()
WORKER_SECRET_NAMES = ("ORIGIN_TOKEN", "METRICS_TOKEN", "CF_ACCESS_CLIENT_ID", "CF_ACCESS_CLIENT_SECRET")
# Deployed stacks that scale to zero only (the IAM key of the scale-from-zero signal): unset locally.
CLOUD_ONLY_WORKER_SECRET_NAMES = ("SCALE_SIGNAL_ACCESS_KEY_ID", "SCALE_SIGNAL_SECRET_ACCESS_KEY")
HOST = "127.0.0.1"


@dataclass(frozen=True)
class LocalStackConfig:
    state_dir: Path
    runtime_port: int
    worker_port: int
    inspector_port: int
    # True: serve a bundle of the Worker built once at start, so edits under edge/ during a test or bench
    # run cannot make wrangler reload it mid-request. False (`make dev`): reload on every edit.
    frozen_worker: bool = False
    runtime_ready_timeout_s: float = 180
    worker_ready_timeout_s: float = 120
    # Worker vars set over wrangler.jsonc's (`--var NAME:value`), e.g. a short keepalive for a test.
    worker_vars: dict[str, str] = field(default_factory=dict)


class LocalStack:
    def __init__(self, config: LocalStackConfig) -> None:
        self.config = config
        self.persist_dir = config.state_dir / "wrangler"
        self.logs_dir = config.state_dir / "logs"
        self.dev_vars_path = config.state_dir / "dev.vars"
        self.worker_bundle_dir = config.state_dir / "worker-bundle"
        self.runtime_url = f"http://{HOST}:{config.runtime_port}"
        self.worker_url = f"http://{HOST}:{config.worker_port}"
        self.secrets = self._load_or_create_secrets()
        self.runtime = Service(
            "runtime",
            [sys.executable, "-m", "runtime", "--host", HOST, "--port", str(config.runtime_port)],
            log_path=self.logs_dir / "runtime.log",
            cwd=REPO_ROOT,
            env={"RUNTIME_N_GPU_LAYERS": "0", "RUNTIME_AUTH_TOKEN": self.secrets["ORIGIN_TOKEN"]},
        )
        self.worker = Service(
            "worker (wrangler dev)",
            [
                str(WRANGLER),
                "dev",
                "--config",
                str(EDGE_DIR / "wrangler.jsonc"),
                *([str(self.worker_bundle_dir / "index.js"), "--no-bundle"] if config.frozen_worker else []),
                "--local",
                "--persist-to",
                str(self.persist_dir),
                "--env-file",
                str(self.dev_vars_path),
                "--ip",
                HOST,
                "--port",
                str(config.worker_port),
                "--inspector-port",
                str(config.inspector_port),
                "--var",
                f"ORIGIN_URL:{self.runtime_url}",
                *[arg for name, value in config.worker_vars.items() for arg in ("--var", f"{name}:{value}")],
                "--show-interactive-dev-session=false",
            ],
            log_path=self.logs_dir / "worker.log",
            cwd=EDGE_DIR,
            env=self._wrangler_env(),
        )

    # -- preparing local state -------------------------------------------------------------------

    def check_ports(self) -> None:
        ensure_port_free(self.config.runtime_port, "the runtime")
        ensure_port_free(self.config.worker_port, "the Worker (wrangler dev)")
        ensure_port_free(self.config.inspector_port, "the Worker's devtools inspector")

    def migrate_d1(self) -> None:
        """Applies the D1 migrations the local database has not recorded yet (wrangler's own runner, which
        records them as the deploy does), so it runs on every start: a state folder from an older
        checkout, even one from before migrations existed, is brought up to date."""
        if not WRANGLER.exists():
            raise HarnessError(f"{WRANGLER} is missing: run `make setup` (npm ci in edge/) first")
        self._wrangler_step(
            "apply the D1 migrations to the local D1",
            ["d1", "migrations", "apply", "DB", "--local", "--persist-to", str(self.persist_dir)],
        )

    def create_api_key(self, name: str, *policy: str) -> str:
        """A new API key in the local stores; `policy`: options of the CLI's create (--routes R, ...).
        The CLI prints the key alone on its last stdout line."""
        stdout = self._keys_cli(
            f"create local API key {name!r}", ["create", "--name", name, *policy], stdout_is_secret=True
        )
        lines = stdout.strip().splitlines()
        if not lines:
            raise HarnessError(f"the key CLI printed no key; log: {self.logs_dir / 'steps.log'}")
        return lines[-1].strip()

    def revoke_api_key(self, name: str) -> None:
        """Revokes every local key called `name` (the CLI revokes by id; names are what callers know)."""
        keys = json.loads(self._keys_cli("list local API keys", ["list", "--json"]))
        ids = [key["id"] for key in keys if key["name"] == name]
        if not ids:
            raise HarnessError(f"no local API key named {name!r}")
        for key_id in ids:
            self._keys_cli(f"revoke local API key {key_id}", ["revoke", "--id", key_id])

    def d1_query(self, sql: str) -> list[dict]:
        """Rows of one SQL statement run against the local D1 (works while the Worker is running)."""
        stdout = self._d1_execute("query the local D1", "--json", "--command", sql)
        return [row for result in json.loads(stdout) for row in result["results"]]

    # -- running ---------------------------------------------------------------------------------

    def start(self, announce: Callable[[str], None] = lambda _message: None) -> None:
        """What `make dev`, the e2e tests and the bench need, in order; stops what it started on failure."""
        self.check_ports()
        announce(f"migrating the local D1 in {self.persist_dir}")
        self.migrate_d1()
        try:
            announce(f"starting the runtime on {self.runtime_url} (CPU; log: {self.runtime.log_path})")
            self.start_runtime()
            announce(f"starting the Worker on {self.worker_url} (wrangler dev; log: {self.worker.log_path})")
            self.start_worker()
        except BaseException:
            self.stop()
            raise

    def start_runtime(self) -> None:
        self.runtime.start()
        self.runtime.wait_ready(f"{self.runtime_url}/readyz", timeout_s=self.config.runtime_ready_timeout_s)

    def start_worker(self) -> None:
        if self.config.frozen_worker:
            run_step(
                "bundle the Worker",
                list(BUILD_COMMAND),
                log_path=self.logs_dir / "steps.log",
                cwd=EDGE_DIR,
                env={**self._wrangler_env(), **build_env(self.worker_bundle_dir)},
            )
        self.worker.start()
        self.worker.wait_ready(f"{self.worker_url}/health", timeout_s=self.config.worker_ready_timeout_s)

    def stop(self) -> None:
        """Worker first, so nothing is sent to a runtime that is going away."""
        self.worker.stop()
        self.runtime.stop()

    # -- helpers ---------------------------------------------------------------------------------

    def _load_or_create_secrets(self) -> dict[str, str]:
        """Secrets for the Worker (and the runtime's bearer token), kept across runs, never printed."""
        if self.dev_vars_path.exists():
            values = dict(
                line.split("=", 1) for line in self.dev_vars_path.read_text().splitlines() if "=" in line
            )
            if all(name in values for name in WORKER_SECRET_NAMES):
                return values
        values = {name: secrets.token_urlsafe(24) for name in WORKER_SECRET_NAMES}
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self.dev_vars_path.touch(mode=0o600)
        self.dev_vars_path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
        return values

    def _keys_cli(self, name: str, args: list[str], stdout_is_secret: bool = False) -> str:
        return run_step(
            name,
            ["node", str(KEYS_CLI), *args, "--local", "--persist-to", str(self.persist_dir)],
            log_path=self.logs_dir / "steps.log",
            cwd=EDGE_DIR,
            env=self._wrangler_env(),
            stdout_is_secret=stdout_is_secret,
        )

    def _wrangler_env(self) -> dict[str, str]:
        return {**OFFLINE_ENV, "WRANGLER_LOG_PATH": str(self.logs_dir / "wrangler")}

    def _d1_execute(self, name: str, *args: str) -> str:
        return self._wrangler_step(
            name, ["d1", "execute", "DB", "--local", "--persist-to", str(self.persist_dir), *args]
        )

    def _wrangler_step(self, name: str, args: list[str]) -> str:
        return run_step(
            name,
            [str(WRANGLER), *args],
            log_path=self.logs_dir / "steps.log",
            cwd=EDGE_DIR,
            env=self._wrangler_env(),
        )
