"""Origin answers the Worker must not trust, through a real `wrangler dev` (workerd's own fetch) in front of
a fake origin on loopback: a redirect to another host is never followed, so the Access and bearer
credentials never reach that host; a 200 that is not JSON of its route's shape is a 502 and never cached.

The session's real runtime cannot redirect or answer HTML, so this module runs a second Worker of its own
whose ORIGIN_URL is the fake origin."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scripts.harness import free_port
from scripts.load import local_client
from scripts.local_stack import LocalStack, LocalStackConfig
from tests.e2e.conftest import digit_free_token

pytestmark = pytest.mark.e2e

FINGERPRINT = "0123456789abcdef0123456789abcdef"
# Another host than the origin's 127.0.0.1: any 127/8 address is loopback on Linux.
OTHER_HOST = "127.0.0.2"


@dataclass
class FakeOrigin:
    """What the fake origin does with inference calls ("ok", "redirect" or "html"), and what it saw."""

    mode: str = "ok"
    redirect_to: str = ""
    inference_calls: int = 0
    tenants: list[str | None] = field(default_factory=list)
    collected: list[dict[str, str]] = field(default_factory=list)


def serve(host: str, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((host, free_port(host)), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def make_handlers(state: FakeOrigin) -> tuple[type[BaseHTTPRequestHandler], type[BaseHTTPRequestHandler]]:
    class Origin(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet test output
            pass

        def answer(self, status: int, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            for name, value in {**headers, "content-length": str(len(body))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/v1/status":
                return self.answer(
                    200,
                    json.dumps({"fingerprint": FINGERPRINT}).encode(),
                    {"content-type": "application/json"},
                )
            return self.inference()

        def do_POST(self):
            self.rfile.read(int(self.headers.get("content-length", "0")))
            return self.inference()

        def inference(self):
            state.inference_calls += 1
            state.tenants.append(self.headers.get("x-steadytext-tenant"))
            if state.mode == "redirect":
                return self.answer(302, b"", {"location": f"{state.redirect_to}{self.path}"})
            if state.mode == "html":
                return self.answer(200, b"<html><body>Sign in</body></html>", {"content-type": "text/html"})
            answer = {
                "text": "fine",
                "finish_reason": "length",
                "usage": {"prompt_tokens": 1, "completion_tokens": 1},
                "model": "m",
                "fingerprint": FINGERPRINT,
            }
            return self.answer(
                200,
                json.dumps(answer).encode(),
                {"content-type": "application/json", "x-model-fingerprint": FINGERPRINT},
            )

    class Collector(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def collect(self):
            state.collected.append({name.lower(): value for name, value in self.headers.items()})
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"text": "followed"}')

        do_GET = do_POST = collect

    return Origin, Collector


@pytest.fixture(scope="module")
def fake_origin() -> Iterator[tuple[FakeOrigin, int]]:
    state = FakeOrigin()
    origin_handler, collector_handler = make_handlers(state)
    origin, collector = serve("127.0.0.1", origin_handler), serve(OTHER_HOST, collector_handler)
    state.redirect_to = f"http://{OTHER_HOST}:{collector.server_address[1]}"
    try:
        yield state, origin.server_address[1]
    finally:
        origin.shutdown()
        collector.shutdown()


@pytest.fixture(scope="module")
def worker_before_fake(fake_origin, tmp_path_factory) -> Iterator[tuple[LocalStack, str]]:
    """A second Worker (wrangler dev) whose origin is the fake; only the Worker of the stack is started."""
    _, origin_port = fake_origin
    stack = LocalStack(
        LocalStackConfig(
            state_dir=tmp_path_factory.mktemp("fake-origin-stack"),
            runtime_port=origin_port,
            worker_port=free_port(),
            inspector_port=free_port(),
            frozen_worker=True,
        )
    )
    stack.migrate_d1()
    try:
        stack.start_worker()
        yield stack, stack.create_api_key("e2e-fake-origin")
    finally:
        stack.stop()


@pytest.fixture()
def client(worker_before_fake, fake_origin):
    stack, key = worker_before_fake
    state, _ = fake_origin
    state.mode, state.inference_calls = "ok", 0
    state.collected.clear()
    state.tenants.clear()
    with local_client(stack.worker_url, key) as http:
        yield http


@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/generate"), ("GET", "/v1/models")])
def test_a_redirect_is_never_followed_and_the_credentials_never_reach_the_other_host(
    client, fake_origin, method, path
):
    state, _ = fake_origin
    state.mode = "redirect"
    body = {"prompt": f"redirected {digit_free_token()}"} if method == "POST" else None

    response = client.request(method, path, json=body)

    assert response.status_code == 503, response.text
    assert response.json()["error"]["type"] == "origin_unavailable"
    assert state.inference_calls >= 1  # the origin was asked, and answered with the redirect
    assert state.collected == []


def test_the_origin_is_told_the_tenant_by_key_id(client, fake_origin, worker_before_fake):
    state, _ = fake_origin
    stack, key = worker_before_fake
    [row] = stack.d1_query("SELECT id FROM api_keys WHERE name = 'e2e-fake-origin'")

    assert client.post("/v1/generate", json={"prompt": f"tenant {digit_free_token()}"}).status_code == 200

    assert state.tenants == [row["id"]]
    assert key not in state.tenants[0]


def test_a_200_that_is_not_json_of_the_route_shape_is_a_502_and_never_cached(client, fake_origin):
    state, _ = fake_origin
    body = {"prompt": f"login page {digit_free_token()}"}
    state.mode = "html"

    bad = client.post("/v1/generate", json=body)

    assert bad.status_code == 502, bad.text
    assert bad.json()["error"]["type"] == "bad_origin_answer"
    state.mode = "ok"
    good = client.post("/v1/generate", json=body)
    assert good.status_code == 200, good.text
    assert good.headers["x-cache"] == "MISS"
    assert state.inference_calls == 2
    assert client.post("/v1/generate", json=body).headers["x-cache"] == "HIT"
