"""`make dev` itself (`python -m scripts.dev`): ready with a working curl example, Ctrl-C stops both
processes and frees the ports, state and key survive into the next run, a taken port is refused clearly."""

import re
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from scripts.harness import ensure_port_free, free_port
from scripts.local_stack import REPO_ROOT

READY_TIMEOUT_S = 240
CURL_KEY = re.compile(r"Authorization: Bearer (\S+?)'")


def start_dev(state_dir, ports):
    runtime_port, worker_port, inspector_port = ports
    flags = {"--runtime-port": runtime_port, "--worker-port": worker_port, "--inspector-port": inspector_port}
    return subprocess.Popen(
        [sys.executable, "-m", "scripts.dev", "--state-dir", str(state_dir)]
        + [part for flag, port in flags.items() for part in (flag, str(port))],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_until_ready(dev) -> str:
    """stdout up to the curl example; fails with everything printed if `make dev` exits or stalls."""
    printed, deadline = [], time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        line = dev.stdout.readline()
        if not line:
            break
        printed.append(line)
        if line.startswith("Ctrl-C stops both"):
            return "".join(printed)
    dev.kill()
    pytest.fail("make dev did not get ready:\n" + "".join(printed))


def stop_with_ctrl_c(dev) -> int:
    dev.send_signal(signal.SIGINT)
    try:
        return dev.wait(timeout=60)
    finally:
        dev.kill()


@pytest.mark.e2e
def test_make_dev_serves_stops_cleanly_and_keeps_state(tmp_path):
    ports = (free_port(), free_port(), free_port())
    body = {"prompt": "Write a haiku about determinism.", "max_tokens": 4}

    first = start_dev(tmp_path, ports)
    banner = read_until_ready(first)
    key = CURL_KEY.search(banner).group(1)
    answer = httpx.post(
        f"http://127.0.0.1:{ports[1]}/v1/generate", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    assert stop_with_ctrl_c(first) == 0
    assert answer.status_code == 200, answer.text
    for port in ports:
        ensure_port_free(port, "a port make dev used")  # nothing left behind (workerd included)

    second = start_dev(tmp_path, ports)
    banner_again = read_until_ready(second)
    replay = httpx.post(f"http://127.0.0.1:{ports[1]}/v1/generate", json=body, headers={"X-API-Key": key})
    assert stop_with_ctrl_c(second) == 0
    assert CURL_KEY.search(banner_again).group(1) == key, (
        "a new key instead of the one kept in the state folder"
    )
    assert (replay.status_code, replay.headers.get("x-cache")) == (200, "HIT"), replay.text
    assert replay.content == answer.content


def test_make_dev_refuses_a_taken_port_before_starting_anything(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        dev = start_dev(tmp_path, (free_port(), taken, free_port()))
        output, _ = dev.communicate(timeout=60)

    assert dev.returncode == 1
    assert f"port {taken} on 127.0.0.1 (wanted for the Worker (wrangler dev)) is already in use" in output
    assert not (tmp_path / "wrangler").exists(), "it touched the local stores before checking the ports"
