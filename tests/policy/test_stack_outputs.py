from pulumi_policy import Secret

from infra.policy.model import STACK, WORKERS_SCRIPT
from infra.policy.rules.stack_outputs import no_secret_in_plain_outputs
from tests.policy.conftest import res, violations

VISIBLE = {"secretsVisible": True}  # the offline plan keeps secret markers

TOKEN = "origin-bearer-0123456789abcdef"
SERVICE_TOKEN = "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken"


def worker():
    return res(
        WORKERS_SCRIPT,
        "edge-script",
        {
            "bindings": [
                {"name": "ORIGIN_TOKEN", "type": "secret_text", "text": TOKEN},
                {"name": "ENVIRONMENT", "type": "plain_text", "text": "production"},
            ]
        },
    )


def stack(**outputs):
    return res(STACK, "steadytext-edge-prod", outputs)


def test_plain_outputs_without_secrets_pass():
    outputs = stack(apiUrl="https://api.example.com", environment="production", originToken=Secret(TOKEN))
    assert violations(no_secret_in_plain_outputs, worker(), outputs, config=VISIBLE) == []


def test_a_secret_binding_value_in_a_plain_output_fails():
    [message] = violations(
        no_secret_in_plain_outputs,
        worker(),
        stack(debug={"headers": [f"Authorization: Bearer {TOKEN}"]}),
        config=VISIBLE,
    )
    assert "stack output 'debug'" in message


def test_a_provider_generated_secret_in_a_plain_output_fails():
    token = res(
        SERVICE_TOKEN, "worker-token", {"name": "worker", "clientSecret": "generated-client-secret-42"}
    )
    [message] = violations(
        no_secret_in_plain_outputs, token, stack(clientSecret="generated-client-secret-42"), config=VISIBLE
    )
    assert "'clientSecret'" in message


def test_a_generated_private_key_in_a_plain_output_fails_and_its_public_key_passes():
    pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIExample\n-----END PRIVATE KEY-----\n"
    key = res(
        "tls:index/privateKey:PrivateKey",
        "receipt-key-ed25519",
        {"algorithm": "ED25519", "privateKeyPemPkcs8": pem, "publicKeyPem": "-----BEGIN PUBLIC KEY-----"},
    )
    [message] = violations(no_secret_in_plain_outputs, key, stack(signingKey=pem), config=VISIBLE)
    assert "'signingKey'" in message
    assert (
        violations(
            no_secret_in_plain_outputs,
            key,
            stack(receiptPublicKey="-----BEGIN PUBLIC KEY-----"),
            config=VISIBLE,
        )
        == []
    )


def test_under_the_engine_where_secrets_arrive_unwrapped_the_check_stands_aside():
    # A properly secret output looks plain there; blocking it would stop every deploy that exports one.
    assert violations(no_secret_in_plain_outputs, worker(), stack(originToken=TOKEN)) == []
    assert violations(no_secret_in_plain_outputs, worker(), stack(originToken=TOKEN), config=VISIBLE) != []
