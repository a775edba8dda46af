"""Run the local stack's processes: one-shot steps, long-running services, readiness waits, clean stops.

Shared by `make dev`, the end-to-end tests and `bench/e2e.py`, so all three start things the same way.
Only the standard library: it must work before anything optional is installed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

LOG_TAIL_LINES = 30
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class HarnessError(RuntimeError):
    """A step or service failed; the message says which one, why, and where its log is."""


def log_tail(log_path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = log_path.read_text(errors="replace")
    except FileNotFoundError:
        return "(no log written)"
    return "\n".join(text.splitlines()[-lines:])


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS considers free right now (for tests and benches that must not collide)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def ensure_port_free(port: int, what: str, host: str = "127.0.0.1") -> None:
    """Fail before starting anything if `port` is taken: a clear message beats a service that dies later.

    SO_REUSEADDR, as the servers themselves set it: connections lingering in TIME_WAIT after a stop do
    not count as taken, a listening socket does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise HarnessError(
                f"port {port} on {host} (wanted for {what}) is already in use ({exc.strerror}); "
                f"stop whatever holds it (`ss -ltnp 'sport = :{port}'` shows it) or choose another port"
            ) from None


def run_step(
    name: str,
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 300,
    stdout_is_secret: bool = False,
) -> str:
    """Run a command to completion; return its stdout. On failure raise with the log's tail.

    `stdout_is_secret` keeps stdout (e.g. a freshly created API key) out of the log file.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env=_merged_env(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise HarnessError(f"{name} did not finish within {timeout_s:.0f} s: {' '.join(argv)}") from None
    except FileNotFoundError:
        raise HarnessError(f"{name}: command not found: {argv[0]} (run `make setup` first)") from None
    with log_path.open("a") as log:
        stdout = "(stdout withheld: it holds a secret)\n" if stdout_is_secret else done.stdout
        log.write(f"$ {' '.join(argv)}\n{stdout}{done.stderr}\n[exit {done.returncode}]\n")
    if done.returncode != 0:
        raise HarnessError(f"{name} failed (exit {done.returncode}); log: {log_path}\n{log_tail(log_path)}")
    return done.stdout


class Service:
    """A long-running process in its own process group, logging to a file, stoppable as a whole.

    Its own group (session) because wrangler starts workerd as a child: stopping only wrangler would
    leave workerd holding the port. It also keeps the terminal's Ctrl-C from reaching the children
    directly, so the harness decides the order in which things stop.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.cwd = cwd
        self.env = env
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n$ {' '.join(self.argv)}\n".encode())
            log.flush()
            try:
                self._process = subprocess.Popen(
                    self.argv,
                    cwd=self.cwd,
                    env=_merged_env(self.env),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_terminate_with_parent if sys.platform == "linux" else None,
                )
            except FileNotFoundError:
                raise HarnessError(
                    f"{self.name}: command not found: {self.argv[0]} (run `make setup` first)"
                ) from None

    def wait_ready(self, url: str, *, timeout_s: float) -> None:
        """Poll `url` until it answers 200; fail early, with the log, if the process exits."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.running:
                code = self._process.returncode if self._process else None
                raise HarnessError(
                    f"{self.name} exited (code {code}) before it was ready; log: {self.log_path}\n"
                    f"{log_tail(self.log_path)}"
                )
            status = http_status(url)
            if status == 200:
                return
            time.sleep(0.25)
        raise HarnessError(
            f"{self.name} was not ready at {url} within {timeout_s:.0f} s; log: {self.log_path}\n"
            f"{log_tail(self.log_path)}"
        )

    def stop(self, grace_s: float = 10) -> None:
        """SIGTERM the whole group, then SIGKILL whatever is left after `grace_s`."""
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait()
        # Children (workerd) may outlive a leader that exited on its own.
        _signal_group(process.pid, signal.SIGKILL)
        self._process = None


# Loopback only: a proxy from the environment must not intercept readiness checks.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_status(url: str, timeout_s: float = 2) -> int | None:
    """The HTTP status of a GET, or None when nothing answers yet."""
    try:
        with _DIRECT.open(url, timeout=timeout_s) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _terminate_with_parent() -> None:
    """Runs in the child before exec: the kernel sends it SIGTERM if the harness dies without calling
    stop() (SIGKILL, out of memory), so no orphaned runtime or wrangler keeps holding a port."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _merged_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    return {**os.environ, **(extra or {})}
