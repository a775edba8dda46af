"""Long requests survive proxies, through a real `wrangler dev` (workerd) in front of a fake origin on
loopback that is slower than the keepalive interval: it answers a stream's headers only after a pause
and sends each event after another. The client gets SSE comment keepalives before the first token and
between tokens; without them the bytes are exactly the origin's stream, and the replayed hit is those
bytes with no keepalive. A non-streamed generation estimated past NON_STREAM_MAX_SECONDS is a 400 naming
`stream: true`, before the origin. This module runs a Worker of its own with a short SSE_KEEPALIVE_MS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from scripts.harness import free_port
from scripts.load import local_client
from scripts.local_stack import LocalStack, LocalStackConfig
from tests.e2e.conftest import digit_free_token

pytestmark = pytest.mark.e2e

FINGERPRINT = "0123456789abcdef0123456789abcdef"
KEEPALIVE = ": keepalive\n\n"
KEEPALIVE_MS = 250
# Both pauses are several keepalive intervals long.
HEADERS_AFTER_S = 1.0
EVENT_GAP_S = 0.8
PIECES = ["slow", " ans", "wer é"]


def compact(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def origin_stream() -> list[bytes]:
    """The native events of one answer, as the runtime renders them (runtime/http/sse.py)."""
    done = {
        "done": True,
        "text": "".join(PIECES),
        "finish_reason": "length",
        "usage": {"prompt_tokens": 2, "completion_tokens": len(PIECES)},
        "model": "m",
        "fingerprint": FINGERPRINT,
    }
    events = [{"token": piece} for piece in PIECES] + [done]
    return [f"data: {compact(event)}\n\n".encode() for event in events]


class SlowOrigin(BaseHTTPRequestHandler):
    inference_calls = 0

    def log_message(self, *args):  # quiet test output
        pass

    def do_GET(self):
        body = json.dumps({"fingerprint": FINGERPRINT}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers.get("content-length", "0"))))
        type(self).inference_calls += 1
        time.sleep(HEADERS_AFTER_S)
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("x-model-fingerprint", FINGERPRINT)
        self.send_header("connection", "close")
        self.end_headers()
        assert request.get("stream") is True  # this origin only streams
        for event in origin_stream():
            self.wfile.write(event)
            self.wfile.flush()
            time.sleep(EVENT_GAP_S)


@pytest.fixture(scope="module")
def slow_worker(tmp_path_factory) -> Iterator[LocalStack]:
    origin = ThreadingHTTPServer(("127.0.0.1", free_port("127.0.0.1")), SlowOrigin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    stack = LocalStack(
        LocalStackConfig(
            state_dir=tmp_path_factory.mktemp("slow-origin-stack"),
            runtime_port=origin.server_address[1],
            worker_port=free_port(),
            inspector_port=free_port(),
            frozen_worker=True,
            worker_vars={"SSE_KEEPALIVE_MS": str(KEEPALIVE_MS), "NON_STREAM_MAX_SECONDS": "1"},
        )
    )
    stack.migrate_d1()
    try:
        stack.start_worker()
        yield stack
    finally:
        stack.stop()
        origin.shutdown()


@pytest.fixture(scope="module")
def client(slow_worker):
    with local_client(slow_worker.worker_url, slow_worker.create_api_key("e2e-slow-origin")) as http:
        yield http


def test_keepalives_hold_a_slow_stream_open_and_never_reach_the_replayed_hit(client):
    SlowOrigin.inference_calls = 0
    body = {"prompt": f"a slow answer {digit_free_token()}", "stream": True}

    with client.stream("POST", "/v1/generate", json=body) as live:
        assert live.status_code == 200
        assert live.headers["x-cache"] == "MISS"
        received = "".join(live.iter_text())

    expected = b"".join(origin_stream()).decode()
    first_token = received.index("data: ")
    assert KEEPALIVE in received[:first_token]  # a keepalive arrived before the first token
    assert KEEPALIVE in received[first_token:]  # and between tokens
    assert received.replace(KEEPALIVE, "") == expected

    # The write-behind lands as the stream's last byte goes out; until then a plain request is refused
    # (it would outlast NON_STREAM_MAX_SECONDS) without reaching the origin.
    plain = {"prompt": body["prompt"]}
    for _ in range(50):
        if client.post("/v1/generate", json=plain).headers.get("x-cache") == "HIT":
            break
        time.sleep(0.2)
    replay = client.post("/v1/generate", json=body)
    assert replay.headers["x-cache"] == "HIT"
    assert replay.text == expected
    assert KEEPALIVE not in replay.text
    assert SlowOrigin.inference_calls == 1


def test_a_plain_generation_that_may_outlast_the_limit_is_told_to_stream(client):
    calls = SlowOrigin.inference_calls

    response = client.post(
        "/v1/generate", json={"prompt": f"a long plain answer {digit_free_token()}", "max_tokens": 100}
    )

    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["field"]) == ("stream_required", "stream")
    assert 'send "stream": true' in error["message"]
    assert "NON_STREAM_MAX_SECONDS: 1 s" in error["message"]
    assert SlowOrigin.inference_calls == calls
