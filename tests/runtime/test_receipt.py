"""`python -m runtime.receipt verify`: OK for the signed bytes, non-zero naming what differs otherwise.

The receipts here are signed the way the Worker signs them (edge/src/receipt.ts; the Worker's own tests
check its side, tests/e2e/test_e2e_receipts.py checks both together through the real stack)."""

import base64
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from runtime.receipt import main

FINGERPRINT = "0123456789abcdef0123456789abcdef"
MODEL_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
REQUEST = b'{"prompt": "Say something kind.", "max_tokens": 4}'
RESPONSE = json.dumps({"text": " Thank you.", "fingerprint": FINGERPRINT}, indent=1).encode()


def _public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def sign(key: Ed25519PrivateKey, **overrides: str) -> str:
    fields = {
        "version": "steadytext-receipt/1",
        "route": "/v1/generate",
        "request_sha256": hashlib.sha256(REQUEST).hexdigest(),
        "fingerprint": FINGERPRINT,
        "model_sha256": MODEL_SHA256,
        "response_sha256": hashlib.sha256(RESPONSE).hexdigest(),
        **overrides,
    }
    message = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return json.dumps({**fields, "signature": base64.b64encode(key.sign(message)).decode()}, sort_keys=True)


def sign_with_lone_surrogate() -> str:
    """A receipt whose route holds a lone surrogate escape: JSON allows it, UTF-8 cannot encode it."""
    fields = json.loads(sign(Ed25519PrivateKey.generate()))
    return json.dumps({**fields, "route": "/v1/generate"}).replace("/v1/generate", "\\ud800")


@pytest.fixture()
def files(tmp_path: Path):
    key = Ed25519PrivateKey.generate()
    paths = {name: tmp_path / name for name in ("request", "response", "receipt", "key.pem")}
    paths["request"].write_bytes(REQUEST)
    paths["response"].write_bytes(RESPONSE)
    paths["receipt"].write_text(sign(key))
    paths["key.pem"].write_bytes(_public_pem(key))
    return key, paths


def verify(paths: dict[str, Path], public_key: str | None = None) -> int:
    return main(
        [
            "verify",
            *("--request", str(paths["request"])),
            *("--response", str(paths["response"])),
            *("--receipt", str(paths["receipt"])),
            *("--public-key", public_key or str(paths["key.pem"])),
        ]
    )


def test_a_genuine_receipt_verifies(files, capsys):
    _, paths = files
    assert verify(paths) == 0
    out = capsys.readouterr().out
    assert out.startswith("OK: /v1/generate answer of model " + MODEL_SHA256) and FINGERPRINT in out
    # The PEM text itself is accepted in place of a file.
    assert verify(paths, public_key=paths["key.pem"].read_text()) == 0


def test_as_a_module_it_exits_zero(files):
    _, paths = files
    result = subprocess.run(
        [sys.executable, "-m", "runtime.receipt", "verify", "--request", str(paths["request"]), "--response",
         str(paths["response"]), "--receipt", str(paths["receipt"]), "--public-key", str(paths["key.pem"])],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.startswith("OK:"), result.stderr


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (
            lambda p: p["response"].write_bytes(RESPONSE.replace(b"Thank", b"Spank")),
            "response: its sha256 is",
        ),
        (lambda p: p["response"].write_bytes(RESPONSE + b"\n"), "not the response body that was signed"),
        (lambda p: p["request"].write_bytes(REQUEST.replace(b"4", b"5")), "request: its sha256 is"),
        (
            lambda p: p["receipt"].write_text(
                json.dumps({**json.loads(p["receipt"].read_text()), "model_sha256": "b" * 64})
            ),
            "the signature does not hold",
        ),
        (
            lambda p: p["receipt"].write_text(
                json.dumps({**json.loads(p["receipt"].read_text()), "route": "/v1/embed"})
            ),
            "the signature does not hold",
        ),
        (
            lambda p: p["key.pem"].write_bytes(_public_pem(Ed25519PrivateKey.generate())),
            "signed by another key",
        ),
    ],
    ids=["response-text", "response-newline", "request", "receipt-model", "receipt-route", "other-key"],
)
def test_anything_tampered_fails_naming_it(files, capsys, tamper, named):
    _, paths = files
    tamper(paths)
    assert verify(paths) == 1
    assert named in capsys.readouterr().err


def test_a_consistently_forged_receipt_over_other_bytes_fails(files, capsys):
    """Hashes that match tampered bytes do not help without the private key."""
    _, paths = files
    forged_response = RESPONSE.replace(b"Thank", b"Spank")
    paths["response"].write_bytes(forged_response)
    forger = Ed25519PrivateKey.generate()
    paths["receipt"].write_text(sign(forger, response_sha256=hashlib.sha256(forged_response).hexdigest()))
    assert verify(paths) == 1
    assert "the signature does not hold" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("receipt", "named"),
    [
        ("not json", "receipt: is not JSON"),
        ("[]", "receipt: must be a JSON object"),
        ('{"version": "steadytext-receipt/1"}', "receipt: route is missing"),
        # Inputs no Worker signs must still end in a named refusal, never a traceback.
        ("[" * 100_000 + "]" * 100_000, "receipt: is nested too deeply"),
        (sign_with_lone_surrogate(), "receipt: route is not valid Unicode text"),
    ],
)
def test_unreadable_inputs_exit_two(files, capsys, receipt, named):
    _, paths = files
    paths["receipt"].write_text(receipt)
    assert verify(paths) == 2
    assert named in capsys.readouterr().err


def test_a_missing_file_or_a_non_ed25519_key_exits_two(files, capsys, tmp_path):
    _, paths = files
    assert verify({**paths, "request": tmp_path / "absent"}) == 2
    assert "request: cannot read" in capsys.readouterr().err
    assert verify(paths, public_key="-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n") == 2
    assert "public key: not a PEM public key" in capsys.readouterr().err
