"""The process harness that `make dev`, the e2e tests and the bench share (fast: no model, no Worker)."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from scripts.harness import HarnessError, Service, ensure_port_free, free_port, run_step
from scripts.local_stack import REPO_ROOT

# A tiny HTTP server that also starts a child holding its own socket, like wrangler starting workerd.
SERVER_WITH_CHILD = textwrap.dedent(
    """
    import http.server, subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(f"CHILD_PID={child.pid}", flush=True)
    handler = http.server.SimpleHTTPRequestHandler
    http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def child_pid(log_path) -> int:
    for _ in range(100):
        for line in log_path.read_text().splitlines():
            if line.startswith("CHILD_PID="):
                return int(line.removeprefix("CHILD_PID="))
        time.sleep(0.05)
    raise AssertionError(log_path.read_text())


def test_port_taken_is_reported_by_number_and_purpose():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        with pytest.raises(HarnessError, match=rf"port {port} .*the runtime.* already in use"):
            ensure_port_free(port, "the runtime")

    ensure_port_free(port, "the runtime")  # released: no error


def test_service_waits_for_readiness_and_stop_ends_the_whole_group(tmp_path):
    port = free_port()
    service = Service(
        "toy server", [sys.executable, "-c", SERVER_WITH_CHILD, str(port)], log_path=tmp_path / "toy.log"
    )
    service.start()
    try:
        service.wait_ready(f"http://127.0.0.1:{port}/", timeout_s=20)
        child = child_pid(tmp_path / "toy.log")
        assert service.running and alive(child)
    finally:
        service.stop()

    assert not service.running
    for _ in range(50):  # the child is reaped by init shortly after SIGKILL
        if not alive(child):
            break
        time.sleep(0.1)
    assert not alive(child), "the service's child outlived stop()"
    ensure_port_free(port, "the toy server")


def test_service_that_dies_early_fails_fast_with_its_log(tmp_path):
    service = Service(
        "doomed",
        [sys.executable, "-c", "print('cannot load model'); raise SystemExit(3)"],
        log_path=tmp_path / "d.log",
    )
    service.start()
    started = time.monotonic()

    with pytest.raises(HarnessError, match=r"doomed exited \(code 3\)(.|\n)*cannot load model"):
        service.wait_ready(f"http://127.0.0.1:{free_port()}/", timeout_s=60)
    assert time.monotonic() - started < 10


def test_service_that_never_gets_ready_times_out(tmp_path):
    service = Service(
        "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"], log_path=tmp_path / "s.log"
    )
    service.start()
    try:
        with pytest.raises(HarnessError, match="sleeper was not ready .* within 1 s"):
            service.wait_ready(f"http://127.0.0.1:{free_port()}/", timeout_s=1)
    finally:
        service.stop()


def test_service_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    ignores_term = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up'); time.sleep(60)"
    )
    service = Service("stubborn", [sys.executable, "-u", "-c", ignores_term], log_path=tmp_path / "x.log")
    service.start()
    while "\nup\n" not in (tmp_path / "x.log").read_text():
        time.sleep(0.05)
    pid = service.pid

    service.stop(grace_s=0.5)

    assert not service.running
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, signal.SIGCONT)


def test_failed_step_names_itself_and_shows_the_log(tmp_path):
    with pytest.raises(HarnessError, match=r"apply schema failed \(exit 2\)(.|\n)*near \"TABLEE\""):
        run_step(
            "apply schema",
            ["sh", "-c", "echo 'near \"TABLEE\": syntax error' >&2; exit 2"],
            log_path=tmp_path / "l",
        )


def test_secret_stdout_stays_out_of_the_log(tmp_path):
    log = tmp_path / "steps.log"
    assert (
        run_step(
            "make key", ["sh", "-c", "echo sk-local-$((100 + 23))"], log_path=log, stdout_is_secret=True
        ).strip()
        == "sk-local-123"
    )
    assert "sk-local-123" not in log.read_text()


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's prctl")
def test_services_end_when_the_harness_is_killed_outright(tmp_path):
    port = free_port()
    harness = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from scripts.harness import Service
        service = Service("toy", [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "{port}"],
                          log_path=Path(r"{tmp_path}") / "toy.log")
        service.start()
        service.wait_ready("http://127.0.0.1:{port}/", timeout_s=20)
        print(f"SERVICE_PID={{service.pid}}", flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", harness], stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT
    )
    service_pid = int(parent.stdout.readline().strip().removeprefix("SERVICE_PID="))
    assert alive(service_pid)

    parent.kill()  # SIGKILL: no finally, no stop()
    parent.wait()

    for _ in range(50):
        if not alive(service_pid):
            break
        time.sleep(0.1)
    assert not alive(service_pid), "the service outlived its harness"
    ensure_port_free(port, "the toy server")
