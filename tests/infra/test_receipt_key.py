"""The receipt-signing key pair (issue 16 item 6): the Worker gets the Ed25519 private key as the secret
RECEIPT_SIGNING_KEY (PKCS#8 PEM), the stack exports the matching public key (SPKI PEM) in plain text,
the private key appears nowhere in plain text, and `receiptKeyVersion` replaces the pair."""

from __future__ import annotations

import json

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pulumi.runtime import rpc

from infra.plan.inventory import build_plan
from tests.infra.conftest import PROJECT, TEST_SECRETS, plaintext_leaks

SCRIPT = "cloudflare:index/workersScript:WorkersScript"
PRIVATE_KEY = "tls:index/privateKey:PrivateKey"


def signing_binding(run) -> dict:
    return next(b for b in run.one(SCRIPT).input("bindings") if b["name"] == "RECEIPT_SIGNING_KEY")


def private_key_pem(run) -> str:
    return signing_binding(run)["text"]


def test_the_worker_signs_with_a_pkcs8_ed25519_key_the_exported_public_key_verifies(stack_run):
    assert signing_binding(stack_run)["type"] == "secret_text"
    # Pulumi lifts secretness to the whole property: the engine gets `bindings` encrypted.
    assert rpc.is_rpc_secret(stack_run.one(SCRIPT).inputs["bindings"])
    pem = private_key_pem(stack_run)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----\n")  # PKCS#8, what WebCrypto importKey("pkcs8") takes
    private_key = serialization.load_pem_private_key(pem.encode(), password=None)
    assert isinstance(private_key, Ed25519PrivateKey)
    exported = stack_run.outputs["receiptPublicKey"]
    assert exported.startswith("-----BEGIN PUBLIC KEY-----\n")  # SPKI
    public_key = serialization.load_pem_public_key(exported.encode())
    assert isinstance(public_key, Ed25519PublicKey)
    message = b"receipt over a request hash, a fingerprint and a body hash"
    public_key.verify(private_key.sign(message), message)
    with pytest.raises(InvalidSignature):
        public_key.verify(private_key.sign(message), message + b"!")
    assert stack_run.one(PRIVATE_KEY).input("algorithm") == "ED25519"


def test_the_private_key_is_nowhere_in_plain_text_and_the_public_key_is_a_plain_output(stack_run):
    body = "".join(private_key_pem(stack_run).splitlines()[1:-1])  # the base64 of the key, any line breaks
    needles = [body[:40], "PRIVATE KEY"]
    for resource in stack_run.resources:
        assert plaintext_leaks(resource.inputs, needles) == [], resource.name
    assert "receiptPublicKey" not in stack_run.secret_outputs
    assert stack_run.outputs["receiptKeyVersion"] == 1
    public = {
        name: value for name, value in stack_run.outputs.items() if name not in stack_run.secret_outputs
    }
    assert plaintext_leaks(public, needles) == []
    # Nor in the offline plan CI prints for every pull request.
    plan = json.dumps(build_plan(PROJECT, "stack", stack_run, TEST_SECRETS.values()))
    assert body[:40] not in plan and "PRIVATE KEY" not in plan and "BEGIN PUBLIC KEY" in plan


def test_raising_receipt_key_version_replaces_the_key_pair(dev_run, run_program):
    assert dev_run.one(PRIVATE_KEY).replacement_trigger == 1
    rotated = run_program("dev", overrides={f"{PROJECT}:receiptKeyVersion": "2"})
    assert rotated.one(PRIVATE_KEY).replacement_trigger == 2
    assert rotated.outputs["receiptKeyVersion"] == 2
    # The same logical resource (no new URN): Pulumi replaces it, and the Worker's binding follows.
    assert rotated.one(PRIVATE_KEY).urn == dev_run.one(PRIVATE_KEY).urn
    key = rotated.one(PRIVATE_KEY)
    assert key.urn in rotated.one(SCRIPT).property_dependencies["bindings"]


def test_a_receipt_signed_with_the_bound_key_verifies_with_the_exported_key_via_runtime_receipt(
    prod_run, tmp_path, capsys
):
    """The stack's two halves work with the verifier users run (`python -m runtime.receipt verify`)."""
    import base64
    import hashlib

    from runtime import receipt

    request, response = b'{"prompt":"a saved request"}', b'{"text":"the saved answer"}'
    fields = {
        "version": receipt.VERSION,
        "route": "/v1/generate",
        "request_sha256": hashlib.sha256(request).hexdigest(),
        "fingerprint": "f" * 32,
        "model_sha256": "a" * 64,
        "response_sha256": hashlib.sha256(response).hexdigest(),
    }
    assert set(fields) == set(receipt.SIGNED_FIELDS)
    key = serialization.load_pem_private_key(private_key_pem(prod_run).encode(), password=None)
    signature = base64.b64encode(key.sign(receipt.signed_message(fields))).decode()
    files = {
        "request": request,
        "response": response,
        "receipt": json.dumps({**fields, "signature": signature}).encode(),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    args = [f"--{name}={tmp_path / name}" for name in files]
    public_key = prod_run.outputs["receiptPublicKey"]
    assert receipt.main(["verify", *args, "--public-key", public_key]) == 0
    assert capsys.readouterr().out.startswith("OK: /v1/generate answer")
    (tmp_path / "response").write_bytes(response + b" ")
    assert receipt.main(["verify", *args, "--public-key", public_key]) == 1
