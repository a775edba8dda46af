"""The runtime as ECS runs it, as a real `python -m runtime` process on loopback: EMF load reports on
its stdout, scale-in protection through a fake ECS agent (ECS_AGENT_URI), and the drain on SIGTERM."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from scripts.harness import free_port
from tests.runtime.conftest import metric_value
from tests.runtime.emf_spec import check_emf
from tests.runtime.fake_ecs_agent import FakeEcsAgent

ENABLE = {"ProtectionEnabled": True, "ExpiresInMinutes": 15}
DISABLE = {"ProtectionEnabled": False}


@dataclass
class RuntimeProcess:
    url: str
    process: subprocess.Popen
    stdout_path: Path
    stderr_path: Path

    def stdout_lines(self) -> list[str]:
        return self.stdout_path.read_text().splitlines()

    def log(self) -> str:
        return self.stderr_path.read_text()[-4000:]


@contextmanager
def runtime_process(tmp_path: Path, **env: str) -> Iterator[RuntimeProcess]:
    port = free_port()
    settings = {"RUNTIME_PORT": str(port), "RUNTIME_N_CTX": "512", "RUNTIME_N_THREADS": "2"}
    # Nothing from whoever runs the suite: no agent, no EMF unless the test asks.
    base = {k: v for k, v in os.environ.items() if not k.startswith("RUNTIME_") and k != "ECS_AGENT_URI"}
    stdout_path, stderr_path = tmp_path / "runtime.stdout", tmp_path / "runtime.stderr"
    with stdout_path.open("wb") as stdout, stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime"],
            env={**base, **settings, **env},
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )
    runtime = RuntimeProcess(f"http://127.0.0.1:{port}", process, stdout_path, stderr_path)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, f"the runtime exited early:\n{runtime.log()}"
            assert time.monotonic() < deadline, f"the runtime never became ready:\n{runtime.log()}"
            try:
                if httpx.get(f"{runtime.url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield runtime
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(condition, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def emf_documents(runtime: RuntimeProcess) -> list[dict]:
    return [json.loads(line) for line in runtime.stdout_lines()]


@contextmanager
def half_sent_request(url: str, body: bytes) -> Iterator[socket.socket]:
    """A POST whose body is held back after its first byte: the runtime has accepted the request and
    waits for the rest. Yields the socket; the caller sends `body[1:]` and reads the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as connection:
        head = (
            f"POST /v1/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        connection.sendall(head.encode() + body[:1])
        yield connection


def read_answer(connection: socket.socket) -> bytes:
    answer = b""
    while chunk := connection.recv(65536):
        answer += chunk
    return answer


def test_emf_reports_and_task_protection_follow_the_load(tmp_path):
    with (
        FakeEcsAgent() as agent,
        runtime_process(
            tmp_path,
            ECS_AGENT_URI=agent.uri,
            RUNTIME_EMF_INTERVAL_SECONDS="0.2",
            RUNTIME_EMF_SERVICE="steadytext-dev-gpu",
            RUNTIME_PROTECTION_IDLE_SECONDS="1",
            RUNTIME_DECODE_SLOTS="2",  # so that six generations at once make some wait
        ) as runtime,
    ):
        wait_for(lambda: len(emf_documents(runtime)) >= 4, "the first load reports")
        assert agent.bodies() == []  # idle since start: never protected

        # Protection while a request is accepted: its body is held back, so it stays open for sure.
        body = json.dumps({"prompt": "Hello", "max_tokens": 4}).encode()
        with half_sent_request(runtime.url, body) as held:
            wait_for(lambda: agent.bodies() == [ENABLE], "protection while a request is open")
            time.sleep(1.5)  # longer than the idle debounce: busy all along, so nothing else is sent
            assert agent.bodies() == [ENABLE]
            held.sendall(body[1:])
            assert read_answer(held).startswith(b"HTTP/1.1 200")
        wait_for(lambda: agent.bodies() == [ENABLE, DISABLE], "protection cleared once idle")

        # Load: six generations at once, so some wait while two run.
        before = len(runtime.stdout_lines())
        prompts = [f"Tell me about the number {n}." for n in range(6)]
        answers: list = []

        def send(prompt: str) -> None:
            answers.append(
                httpx.post(
                    f"{runtime.url}/v1/generate", json={"prompt": prompt, "max_tokens": 24}, timeout=300
                )
            )

        threads = [threading.Thread(target=send, args=(prompt,)) for prompt in prompts]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [answer.status_code for answer in answers] == [200] * 6
        time.sleep(0.5)  # one more report after the last answer
        wait_for(lambda: agent.bodies()[-1] == DISABLE and len(agent.bodies()) == 4, "protect + clear again")
        assert agent.bodies() == [ENABLE, DISABLE, ENABLE, DISABLE]

    documents = emf_documents(runtime)
    for document in documents:  # stdout carries EMF lines and nothing else
        check_emf(document)
        directive = document["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "SteadyText/Runtime"
        assert directive["Dimensions"] == [["Service", "Model"]]
        assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
            "QueueDepth": "Count",
            "InFlight": "Count",
            "TokensPerSecond": "Count/Second",
            "QueueWaitP95": "Milliseconds",
        }
        assert document["Service"] == "steadytext-dev-gpu"
    under_load = [d for d in documents[before:] if d["Model"] == "generate"]
    assert max(d["QueueDepth"] for d in under_load) >= 1
    assert max(d["InFlight"] for d in under_load) == 2  # both decode slots, batched
    assert max(d["TokensPerSecond"] for d in under_load) > 0
    assert max(d["QueueWaitP95"] for d in under_load) > 0
    assert under_load[-1]["QueueDepth"] == under_load[-1]["InFlight"] == 0
    assert {d["Model"] for d in documents} == {"generate", "embed"}


def _generate_body(n: int) -> dict:
    # Every fourth one streams: a drain must finish streams too.
    return {"prompt": f"Write one sentence about the number {n}.", "max_tokens": 12, "stream": n % 4 == 3}


def test_sigterm_drains_every_accepted_request_and_refuses_later_ones(tmp_path):
    # A grace period this machine cannot run out of: the test is about what is served, not how fast.
    settings = {
        "RUNTIME_QUEUE_SIZE": "16",
        "RUNTIME_QUEUE_SIZE_PER_TENANT": "16",
        "RUNTIME_DRAIN_SECONDS": "1200",
    }
    with runtime_process(tmp_path, **settings) as runtime:
        url = runtime.url
        with httpx.Client(base_url=url, timeout=300) as http:
            alone = [http.post("/v1/generate", json=_generate_body(n)) for n in range(16)]
            assert [answer.status_code for answer in alone] == [200] * 16
            started_before = metric_value(
                http.get("/metrics").text, "runtime_inferences_total", 'kind="generate"'
            )

        answers: dict[int, httpx.Response] = {}

        def send(n: int) -> None:
            answers[n] = httpx.post(f"{url}/v1/generate", json=_generate_body(n), timeout=300)

        threads = [threading.Thread(target=send, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()

        def all_accepted() -> bool:
            text = httpx.get(f"{url}/metrics").text
            started = metric_value(text, "runtime_inferences_total", 'kind="generate"') - started_before
            waiting = metric_value(text, "runtime_queue_depth", 'model="generate"')
            return started + waiting == 16

        wait_for(all_accepted, "the 16 requests to be queued or running")
        runtime.process.send_signal(signal.SIGTERM)

        wait_for(lambda: httpx.get(f"{url}/readyz").status_code == 503, "/readyz to report the drain")
        later = httpx.post(f"{url}/v1/generate", json=_generate_body(0), timeout=30)
        assert later.status_code == 503 and later.json()["error"]["type"] == "shutting_down"
        assert int(later.headers["Retry-After"]) > 0
        assert httpx.get(f"{url}/healthz").status_code == 200  # alive while it drains

        for thread in threads:
            thread.join()
        assert runtime.process.wait(timeout=1200) == 0, runtime.log()
    for n in range(16):
        assert answers[n].status_code == 200, (n, answers[n].text)
        assert answers[n].content == alone[n].content, n  # byte for byte what it answers alone
    assert sum(1 for n in range(16) if _generate_body(n)["stream"]) == 4


def test_a_drain_that_outlasts_its_grace_period_exits_1(tmp_path):
    with (
        FakeEcsAgent() as agent,
        runtime_process(tmp_path, RUNTIME_DRAIN_SECONDS="0.5", ECS_AGENT_URI=agent.uri) as runtime,
    ):
        body = json.dumps({"prompt": "Hello", "max_tokens": 4}).encode()
        with half_sent_request(runtime.url, body):
            # Protection tells us the runtime counts the request as accepted.
            wait_for(lambda: agent.bodies() == [ENABLE], "the held request to be accepted")
            runtime.process.send_signal(signal.SIGTERM)
            assert runtime.process.wait(timeout=60) == 1, runtime.log()
        assert "cutting off 1 requests" in runtime.stderr_path.read_text()
