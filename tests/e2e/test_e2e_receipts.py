"""Signed receipts through the real stack: the Worker (workerd, `wrangler dev`) signs with the local
stack's Ed25519 key (scripts/local_stack.py writes it into dev.vars), and `python -m runtime.receipt
verify` checks the saved bytes with the public key, for a live answer and for its cache hit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from scripts.local_stack import REPO_ROOT, LocalStack

pytestmark = pytest.mark.e2e

RECEIPT = "X-Steadytext-Receipt"


def verify(
    stack: LocalStack, folder: Path, request: bytes, response: bytes, receipt: str
) -> subprocess.CompletedProcess:
    paths = {name: folder / name for name in ("request.json", "response.json", "receipt.json")}
    paths["request.json"].write_bytes(request)
    paths["response.json"].write_bytes(response)
    paths["receipt.json"].write_text(receipt)
    return subprocess.run(
        [sys.executable, "-m", "runtime.receipt", "verify",
         "--request", str(paths["request.json"]), "--response", str(paths["response.json"]),
         "--receipt", str(paths["receipt.json"]), "--public-key", str(stack.receipt_public_key_path)],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False,
    )  # fmt: skip


def test_receipts_of_a_live_answer_and_its_cache_hit_verify(
    stack, worker: httpx.Client, runtime, unique_prompt, tmp_path
):
    # The client's own bytes, spacing and all: the receipt signs them as sent.
    request = ('{"max_tokens": 6,   "prompt": ' + json.dumps(unique_prompt("signed answers")) + "}").encode()
    headers = {RECEIPT: "request", "content-type": "application/json"}
    live = worker.post("/v1/generate", content=request, headers=headers)
    assert live.status_code == 200 and live.headers["x-cache"] == "MISS", live.text
    receipt = json.loads(live.headers[RECEIPT])
    status = runtime.get("/v1/status").json()
    assert receipt["fingerprint"] == status["fingerprint"] == live.json()["fingerprint"]
    assert receipt["model_sha256"] == status["model"]["sha256"]
    checked = verify(stack, tmp_path, request, live.content, live.headers[RECEIPT])
    assert checked.returncode == 0 and checked.stdout.startswith("OK: /v1/generate"), checked.stderr

    hit = worker.post("/v1/generate", content=request, headers=headers)
    assert hit.headers["x-cache"] == "HIT" and hit.content == live.content
    checked = verify(stack, tmp_path, request, hit.content, hit.headers[RECEIPT])
    assert checked.returncode == 0, checked.stderr

    # A tampered response, request or receipt fails, naming what.
    tampered_response = live.content.replace(b'"text"', b'"text" ', 1)
    failed = verify(stack, tmp_path, request, tampered_response, live.headers[RECEIPT])
    assert failed.returncode == 1 and "response: its sha256 is" in failed.stderr
    failed = verify(stack, tmp_path, request.replace(b"6", b"7", 1), live.content, live.headers[RECEIPT])
    assert failed.returncode == 1 and "request: its sha256 is" in failed.stderr
    forged = json.dumps({**receipt, "model_sha256": "0" * 64})
    failed = verify(stack, tmp_path, request, live.content, forged)
    assert failed.returncode == 1 and "the signature does not hold" in failed.stderr


def test_an_openai_answer_is_signed_and_bad_receipt_requests_are_refused(
    stack, worker: httpx.Client, unique_prompt, tmp_path
):
    model = worker.get("/v1/models").json()["data"][0]["id"]
    body = {
        "model": model,
        "messages": [{"role": "user", "content": unique_prompt("signed chat")}],
        "max_tokens": 4,
    }
    request = json.dumps(body).encode()
    chat = worker.post(
        "/v1/chat/completions",
        content=request,
        headers={RECEIPT: "request", "content-type": "application/json"},
    )
    assert chat.status_code == 200, chat.text
    assert verify(stack, tmp_path, request, chat.content, chat.headers[RECEIPT]).returncode == 0

    unknown = worker.post(
        "/v1/generate", json={"prompt": unique_prompt("bad header")}, headers={RECEIPT: "please"}
    )
    assert unknown.status_code == 400 and unknown.json()["error"]["field"] == RECEIPT
    streamed = worker.post(
        "/v1/generate",
        json={"prompt": unique_prompt("signed stream"), "stream": True},
        headers={RECEIPT: "request"},
    )
    assert streamed.status_code == 400 and "streamed" in streamed.json()["error"]["message"]
