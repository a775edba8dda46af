from pulumi_policy import Secret

from infra.policy.model import WORKERS_SCRIPT
from infra.policy.rules.worker_secrets import REQUIRED_SECRET_BINDINGS, worker_secrets_bound_as_secrets
from tests.policy.conftest import res, violations

PLAIN_VARS = [
    {"name": "MAX_TOKENS_LIMIT", "type": "plain_text", "text": "512"},
    {"name": "DB", "type": "d1", "id": "db-id"},
]


def secret_bindings(**types):
    return [
        {"name": name, "type": types.get(name, "secret_text"), "text": f"value-of-{name}"}
        for name in REQUIRED_SECRET_BINDINGS
    ]


def worker(bindings):
    return res(WORKERS_SCRIPT, "edge-script", {"scriptName": "edge", "bindings": bindings})


def test_all_credentials_bound_as_secret_text_pass():
    assert violations(worker_secrets_bound_as_secrets, worker(secret_bindings() + PLAIN_VARS)) == []


def test_bindings_lifted_into_one_secret_are_read_through():
    # The offline plan keeps Pulumi's secret wrapper around the whole list.
    assert violations(worker_secrets_bound_as_secrets, worker(Secret(secret_bindings() + PLAIN_VARS))) == []


def test_a_credential_bound_as_plain_text_fails():
    [message] = violations(
        worker_secrets_bound_as_secrets, worker(secret_bindings(ORIGIN_TOKEN="plain_text"))
    )
    assert "ORIGIN_TOKEN as plain_text" in message


def test_a_missing_credential_binding_fails():
    bindings = [b for b in secret_bindings() if b["name"] != "CF_ACCESS_CLIENT_SECRET"]
    [message] = violations(worker_secrets_bound_as_secrets, worker(bindings))
    assert "no binding CF_ACCESS_CLIENT_SECRET" in message


def test_another_credential_looking_plain_var_fails():
    leaked = {"name": "UPSTREAM_API_KEY", "type": "plain_text", "text": "k"}
    [message] = violations(worker_secrets_bound_as_secrets, worker(secret_bindings() + [leaked]))
    assert "UPSTREAM_API_KEY as plain_text" in message


def test_the_receipt_signing_key_is_required_and_bound_as_a_secret():
    assert "RECEIPT_SIGNING_KEY" in REQUIRED_SECRET_BINDINGS
    [message] = violations(
        worker_secrets_bound_as_secrets, worker(secret_bindings(RECEIPT_SIGNING_KEY="plain_text"))
    )
    assert "RECEIPT_SIGNING_KEY as plain_text" in message


def test_another_signing_key_as_plain_text_fails():
    leaked = {"name": "WEBHOOK_SIGNING_KEY", "type": "plain_text", "text": "k"}
    [message] = violations(worker_secrets_bound_as_secrets, worker(secret_bindings() + [leaked]))
    assert "WEBHOOK_SIGNING_KEY as plain_text" in message
