"""`python -m runtime.receipt verify --request F --response F --receipt F --public-key PEM`

Checks a receipt the edge Worker signed (`X-Steadytext-Receipt: request`, docs/edge.md "Receipts") against
the saved request body, the saved response body and the deployment's public key (the stack output
`receiptPublicKey`, SPKI PEM: a file, or the PEM text itself). Exit 0 and `OK: ...` when the Ed25519
signature holds and both bodies are the ones signed; exit 1 naming what does not match; exit 2 when an
input cannot be read. The receipt file holds the header's value (a JSON object).
"""

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

VERSION = "steadytext-receipt/1"
SIGNED_FIELDS = ("version", "route", "request_sha256", "fingerprint", "model_sha256", "response_sha256")
_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class ReceiptMismatch(Exception):
    """The receipt does not vouch for these bytes (or was altered); the message names what differs."""


class UnreadableInput(Exception):
    """An input is not a receipt, a public key or a readable file."""


@dataclass(frozen=True)
class VerifiedReceipt:
    route: str
    fingerprint: str
    model_sha256: str


def parse_receipt(text: str) -> dict[str, str]:
    try:
        receipt = json.loads(text)
    except ValueError:
        raise UnreadableInput("receipt: is not JSON (save the X-Steadytext-Receipt header's value)") from None
    except RecursionError:
        raise UnreadableInput("receipt: is nested too deeply to be a receipt (a flat JSON object)") from None
    if not isinstance(receipt, dict):
        raise UnreadableInput("receipt: must be a JSON object")
    for field in (*SIGNED_FIELDS, "signature"):
        if not isinstance(receipt.get(field), str):
            raise UnreadableInput(f"receipt: {field} is missing or not a string")
        # JSON admits lone surrogate escapes ("\ud800"); the signed message is UTF-8, which cannot hold them.
        try:
            receipt[field].encode("utf-8")
        except UnicodeEncodeError:
            raise UnreadableInput(f"receipt: {field} is not valid Unicode text") from None
    if receipt["version"] != VERSION:
        raise UnreadableInput(f"receipt: version {receipt['version']!r} is not {VERSION!r}")
    return receipt


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(pem)
    except ValueError as error:
        raise UnreadableInput(f"public key: not a PEM public key ({error})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise UnreadableInput("public key: not an Ed25519 key")
    return key


def signed_message(receipt: dict[str, str]) -> bytes:
    """What the Worker signs: the canonical JSON (sorted keys, no spaces) of every field but the signature."""
    fields = {name: receipt[name] for name in SIGNED_FIELDS}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _response_fingerprint(response: bytes) -> str | None:
    """The fingerprint an answer body names (`fingerprint`, or `system_fingerprint` in OpenAI's shape)."""
    try:
        body = json.loads(response)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    named = body.get("fingerprint", body.get("system_fingerprint"))
    return named if isinstance(named, str) else None


def verify_receipt(
    request: bytes, response: bytes, receipt_text: str, public_key_pem: bytes
) -> VerifiedReceipt:
    receipt = parse_receipt(receipt_text)
    key = load_public_key(public_key_pem)
    try:
        signature = base64.b64decode(receipt["signature"], validate=True)
    except (binascii.Error, ValueError):
        raise ReceiptMismatch("receipt: the signature is not base64") from None
    try:
        key.verify(signature, signed_message(receipt))
    except InvalidSignature:
        raise ReceiptMismatch(
            "receipt: the signature does not hold: the receipt was altered or signed by another key"
        ) from None
    for name in ("request_sha256", "model_sha256", "response_sha256"):
        if not _SHA256_HEX.match(receipt[name]):
            raise ReceiptMismatch(f"receipt: {name} is not a sha256")
    for what, data in (("request", request), ("response", response)):
        digest = hashlib.sha256(data).hexdigest()
        if digest != receipt[f"{what}_sha256"]:
            raise ReceiptMismatch(
                f"{what}: its sha256 is {digest}, the receipt signs {receipt[f'{what}_sha256']}: "
                f"not the {what} body that was signed"
            )
    named = _response_fingerprint(response)
    if named is not None and named != receipt["fingerprint"]:  # unreachable unless the signer erred
        raise ReceiptMismatch(f"response: names fingerprint {named}, the receipt {receipt['fingerprint']}")
    return VerifiedReceipt(receipt["route"], receipt["fingerprint"], receipt["model_sha256"])


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise UnreadableInput(f"{what}: cannot read {path}: {error.strerror}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.receipt", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    verify = commands.add_parser("verify", help="check a receipt against the saved request and response")
    verify.add_argument("--request", required=True, help="the request body exactly as sent (a file)")
    verify.add_argument("--response", required=True, help="the response body exactly as received (a file)")
    verify.add_argument("--receipt", required=True, help="the X-Steadytext-Receipt header's value (a file)")
    verify.add_argument(
        "--public-key", required=True, help="the receipt public key: a PEM file, or the PEM text itself"
    )
    arguments = parser.parse_args(argv)
    try:
        pem = arguments.public_key
        public_key = pem.encode() if pem.lstrip().startswith("-----BEGIN") else _read(pem, "public key")
        verified = verify_receipt(
            _read(arguments.request, "request"),
            _read(arguments.response, "response"),
            _read(arguments.receipt, "receipt").decode("utf-8", "replace").strip(),
            public_key,
        )
    except UnreadableInput as error:
        print(f"runtime.receipt: {error}", file=sys.stderr)
        return 2
    except ReceiptMismatch as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    print(
        f"OK: {verified.route} answer of model {verified.model_sha256} (fingerprint {verified.fingerprint}); "
        "request and response are the signed ones"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
