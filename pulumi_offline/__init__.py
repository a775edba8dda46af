"""Pulumi mocks harness: run the program (or a single component) without any cloud and inspect what it
declared. Used by tests/infra (through its conftest) and by the offline plan (`python -m infra.plan`); it is
test tooling, so it lives beside the production package `infra`, never inside it (the program and its
components never import it).

It is built on Pulumi's public testing API — `pulumi.runtime.Mocks`, `pulumi.runtime.set_mocks` and the
`@pulumi.runtime.test` decorator that awaits what the run returns — so a Pulumi upgrade that changes the
SDK's internals fails here loudly, not silently. Two things the plan needs have no public API; each is
one small function below, named in its comment: what the engine is sent for a resource beyond its
inputs (`RecordingMonitor.RegisterResource`) and the stack's exports with their secretness
(`resolved_exports`).

- `RecordingMocks` answers resource registrations (inputs echoed back as outputs, plus the computed
  outputs in `COMPUTED_OUTPUTS`) and invokes (`INVOKE_RESULTS`); an invoke with no answer fails the run,
  naming its token.
- `RecordingMonitor` records, for every resource, what the engine would be sent: type, name, URN,
  inputs (secrets still wrapped, so callers can prove they stay secret), parent and options
  (`protect`, `retain_on_delete`, dependencies, property dependencies, aliases, replacement trigger).
- `run_pulumi(build, stack, config)` runs `build()` under the mocks and returns a `PulumiRun` with the
  resources, the resolved stack exports and which exports are secret.
- `stack_config(stack)` is the config the CLI would hand the program for Pulumi.<stack>.yaml, plus
  test identities for the placeholder ids and the secrets in `TEST_SECRETS`.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pulumi
from google.protobuf import json_format
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

from infra.config.stack_files import stack_settings
from pulumi_offline.aws import AWS_COMPUTED_OUTPUTS, AWS_INVOKE_RESULTS, challenge_token_outputs

PROJECT = "steadytext-edge"

TEST_ACCOUNT_ID = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
TEST_ZONE_ID = "0f9e8d7c6b5a49382716f5e4d3c2b1a0"

# Stack files hold placeholders (REPLACE_WITH_…) for the account's own ids: mock runs use real-looking ones.
PLACEHOLDER_PREFIX = "REPLACE_WITH_"
TEST_IDENTITY = {
    f"{PROJECT}:accountId": TEST_ACCOUNT_ID,
    f"{PROJECT}:zoneId": TEST_ZONE_ID,
    f"{PROJECT}:accessTeamName": "steadytext-test",
    f"{PROJECT}:dockerHubUsername": "steadytexttest",
}

# Every secret a stack needs (stack files hold none: they are set with `pulumi config set --secret`), with
# values distinctive enough to grep for in recorded state and plan output.
TEST_SECRETS = {
    "cloudflare:apiToken": "SECRET-cloudflare-api-token",
    f"{PROJECT}:originToken": "SECRET-origin-bearer-token",
    f"{PROJECT}:metricsToken": "SECRET-metrics-scrape-token",
    f"{PROJECT}:r2AccessKeyId": "SECRET-r2-access-key-id",
    f"{PROJECT}:r2SecretAccessKey": "SECRET-r2-secret-access-key",
    f"{PROJECT}:dockerHubAccessToken": "SECRET-docker-hub-access-token",
}

CF = "cloudflare:index"


def _hex_id(name: str, length: int = 32) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:length]


def _uuid(name: str) -> str:
    h = _hex_id(name)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:32]}"


# The account's Workers as Cloudflare's script list reports them: script name → the Durable Object
# migration tag the live script has. Empty: a first deploy. Tests add entries to stand for earlier deploys.
LIVE_WORKER_SCRIPTS: dict[str, str] = {}

# The predefined DLP profiles a Zero Trust account has (id → name and entry names; a few of each, with the
# kinds of entry the program must leave off).
ACCOUNT_PREDEFINED_DLP_PROFILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "e91a2360-da51-4fdf-9711-bcdecd462614": (
        "Financial Information",
        (
            "American Express Card Number",
            "American Express Text",
            "CVV Card Number (labeled)",
            "IBAN",
            "Mastercard Card Number",
            "Visa Card Number",
            "Visa Text",
        ),
    ),
    "d658f520-6ecb-4a34-a725-ba37243c2d28": (
        "Social Security, Insurance, Tax, and Identifier Numbers",
        ("Canada Social Insurance Number", "United States SSN", "United States SSN Text"),
    ),
}

# Fixed times, so plans stay the same from run to run.
SERVICE_TOKEN_EXPIRES_AT = "2027-11-23T00:00:00Z"
ROTATION_WINDOW_ENDS_AT = "2026-11-24T00:00:00Z"


def _service_token(args: MockResourceArgs) -> dict:
    # A new client_secret_version is a new secret (Cloudflare rotates it), under the same client id.
    version = int(args.inputs.get("clientSecretVersion") or 1)
    return {
        "clientId": f"{_hex_id(args.name)}.access",
        "clientSecret": f"SECRET-access-client-secret-{_hex_id(f'{args.name}/v{version}', 8)}",
        "expiresAt": SERVICE_TOKEN_EXPIRES_AT,
    }


def _workers_script(args: MockResourceArgs) -> dict:
    uploaded = (args.inputs.get("migrations") or {}).get("newTag")
    return {"migrationTag": uploaded or LIVE_WORKER_SCRIPTS.get(args.inputs["scriptName"], "")}


def _tls_private_key(args: MockResourceArgs) -> dict:
    """A real key pair (Ed25519 only, what the program asks for), derived from the resource name so runs
    are repeatable: tests can sign with the private key the Worker gets and verify with the exported
    public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if args.inputs.get("algorithm") != "ED25519":
        raise NotImplementedError(
            f"pulumi_offline mocks only ED25519 keys, not {args.inputs.get('algorithm')}"
        )
    key = Ed25519PrivateKey.from_private_bytes(hashlib.sha256(f"tls-key/{args.name}".encode()).digest())
    pkcs8 = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = key.public_key()
    return {
        "privateKeyPem": pkcs8,
        "privateKeyPemPkcs8": pkcs8,
        "privateKeyOpenssh": key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode(),
        "publicKeyPem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode(),
        "publicKeyOpenssh": public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
        ).decode()
        + "\n",
    }


# Dynamic resources share one type token: each is told apart by an input only it has.
DYNAMIC_OUTPUTS: dict[str, Callable[[MockResourceArgs], dict]] = {
    "filename": challenge_token_outputs,
    "grace_seconds": lambda a: {"previous_secret_expires_at": ROTATION_WINDOW_ENDS_AT},
}


def _dynamic(args: MockResourceArgs) -> dict:
    return next((compute(args) for marker, compute in DYNAMIC_OUTPUTS.items() if marker in args.inputs), {})


# Outputs the provider computes (ids, AUDs, generated credentials), by resource type token.
COMPUTED_OUTPUTS: dict[str, Callable[[MockResourceArgs], dict]] = {
    f"{CF}/d1Database:D1Database": lambda a: {"uuid": _uuid(a.name)},
    f"{CF}/zeroTrustAccessApplication:ZeroTrustAccessApplication": lambda a: {"aud": _hex_id(a.name, 64)},
    f"{CF}/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken": _service_token,
    f"{CF}/workersScript:WorkersScript": _workers_script,
    f"{CF}/queue:Queue": lambda a: {"queueId": _hex_id(a.name)},
    "tls:index/privateKey:PrivateKey": _tls_private_key,
    "pulumi-python:dynamic:Resource": _dynamic,
}


def _predefined_dlp_profile(args: dict) -> dict:
    name, _ = ACCOUNT_PREDEFINED_DLP_PROFILES[args["profileId"]]
    return {"accountId": args["accountId"], "profileId": args["profileId"], "name": name}


def _predefined_dlp_entries(args: dict) -> dict:
    entries = [
        {"id": _uuid(entry), "name": entry, "profileId": profile_id, "enabled": False, "type": "predefined"}
        for profile_id, (_, names) in ACCOUNT_PREDEFINED_DLP_PROFILES.items()
        for entry in names
    ]
    return {"accountId": args["accountId"], "results": entries}


# Invoke results by function token.
INVOKE_RESULTS: dict[str, Callable[[dict], dict]] = {
    f"{CF}/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken": lambda args: {
        "token": "SECRET-tunnel-token-"
        + base64.b64encode(json.dumps({"a": args["accountId"], "t": args["tunnelId"]}).encode()).decode()
    },
    f"{CF}/getWorkersScripts:getWorkersScripts": lambda args: {
        "accountId": args["accountId"],
        "results": [{"id": name, "migrationTag": tag} for name, tag in LIVE_WORKER_SCRIPTS.items()],
    },
    f"{CF}/getZeroTrustDlpPredefinedProfile:getZeroTrustDlpPredefinedProfile": _predefined_dlp_profile,
    f"{CF}/getZeroTrustDlpPredefinedEntries:getZeroTrustDlpPredefinedEntries": _predefined_dlp_entries,
}


# The AWS side's computed outputs and invokes.
COMPUTED_OUTPUTS.update(AWS_COMPUTED_OUTPUTS)
INVOKE_RESULTS.update(AWS_INVOKE_RESULTS)


def plain(value: Any) -> Any:
    """The value with every secret wrapper removed (to compare contents)."""
    if rpc.is_rpc_secret(value):
        return plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def plaintext_leaks(value: Any, needles: Iterable[str]) -> list[str]:
    """Needles that occur in `value` outside any secret wrapper."""
    if rpc.is_rpc_secret(value):
        return []
    if isinstance(value, dict):
        return [leak for item in value.values() for leak in plaintext_leaks(item, needles)]
    if isinstance(value, list):
        return [leak for item in value for leak in plaintext_leaks(item, needles)]
    if isinstance(value, str):
        return [needle for needle in needles if needle in value]
    return []


@dataclass
class RecordedResource:
    type: str
    name: str
    urn: str
    custom: bool
    inputs: dict  # as sent to the engine: secrets still wrapped (see `plain`)
    parent: str
    protect: bool
    retain_on_delete: bool
    dependencies: list[str]
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    additional_secret_outputs: list[str] = field(default_factory=list)
    ignore_changes: list[str] = field(default_factory=list)
    # Each alias as the engine gets it: a URN, or a spec of what differed then (name, type, parentUrn, …).
    aliases: list[dict[str, Any]] = field(default_factory=list)
    # The `replacement_trigger` option's value (a change replaces the resource); None when unset.
    replacement_trigger: Any = None

    def input(self, key: str) -> Any:
        return plain(self.inputs.get(key))


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.invocations: list[tuple[str, dict]] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str, dict]:
        computed = COMPUTED_OUTPUTS.get(args.typ)
        outputs = {**args.inputs, **(computed(args) if computed else {})}
        return f"{args.name}-id", outputs

    def call(self, args: MockCallArgs) -> dict:
        self.invocations.append((args.token, plain(args.args)))
        answer = INVOKE_RESULTS.get(args.token)
        if answer is None:
            raise NotImplementedError(f"pulumi_offline has no INVOKE_RESULTS entry for {args.token}")
        return answer(plain(args.args))


class RecordingMonitor(MockMonitor):
    """Records every resource as the engine would receive it.

    Private API, on purpose: `Mocks.new_resource` (the public hook) is given only a resource's type, name,
    inputs, provider and id, while the plan and the policy pack also need its parent, `protect`,
    `retain_on_delete`, dependencies, property dependencies, aliases and additional secret outputs —
    fields of the engine's RegisterResource request that only the monitor sees. This override only reads
    the request and passes it on; tests/infra/test_mocks_harness.py pins each recorded field.
    """

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[RecordedResource] = []

    def RegisterResource(self, request):  # noqa: N802 (the engine's RPC name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.recorded.append(
                RecordedResource(
                    type=request.type,
                    name=request.name,
                    urn=response.urn,
                    custom=request.custom,
                    inputs=rpc.deserialize_properties(request.object),
                    parent=request.parent,
                    protect=request.protect,
                    retain_on_delete=request.retainOnDelete,
                    dependencies=list(request.dependencies),
                    property_dependencies={
                        key: list(deps.urns) for key, deps in request.propertyDependencies.items()
                    },
                    additional_secret_outputs=list(request.additionalSecretOutputs),
                    ignore_changes=list(request.ignoreChanges),
                    aliases=[json_format.MessageToDict(alias) for alias in request.aliases],
                    replacement_trigger=(
                        json_format.MessageToDict(request.replacement_trigger)
                        if request.HasField("replacement_trigger")
                        else None
                    ),
                )
            )
        return response


async def resolved_exports() -> tuple[dict[str, Any], set[str]]:
    """The values the current run passed to `pulumi.export`, resolved, and the names of the secret ones.

    Private API, on purpose: Pulumi has no public way to read a stack's exports in-process (the CLI gets
    them from the engine, which the mocks replace) nor to ask whether an Output is secret, so this reads
    the root Stack resource's `outputs` and awaits `Output.future()` / `Output.is_secret()` (the SDK's
    undocumented internals). tests/infra/test_mocks_harness.py pins what it returns.
    """
    from pulumi.runtime.settings import get_root_resource

    values: dict[str, Any] = {}
    secret: set[str] = set()
    for name, value in get_root_resource().outputs.items():
        output = pulumi.Output.from_input(value)
        values[name] = await output.future()
        if await output.is_secret():
            secret.add(name)
    return values, secret


@dataclass
class PulumiRun:
    resources: list[RecordedResource]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    invocations: list[tuple[str, dict]] = field(default_factory=list)

    def of_type(self, token: str) -> list[RecordedResource]:
        return [r for r in self.resources if r.type == token]

    def one(self, token: str) -> RecordedResource:
        found = self.of_type(token)
        assert len(found) == 1, f"expected one {token}, found {[r.name for r in found]}"
        return found[0]

    def by_urn(self, urn: str) -> RecordedResource:
        return next(r for r in self.resources if r.urn == urn)


def run_pulumi(
    build: Callable[[], Any], *, stack: str, config: dict[str, str], secret_keys: Iterable[str] = ()
) -> PulumiRun:
    """Run `build` (the program, or a component under test) as stack `stack` under the mocks.

    Each run happens in a fresh `contextvars.Context`, where Pulumi's runtime state (settings, config, the
    root Stack) starts empty, so `set_mocks` creates a new root Stack and nothing — exports included —
    leaks from one run into the next."""
    return contextvars.Context().run(_run_in_fresh_context, build, stack, dict(config), list(secret_keys))


def _run_in_fresh_context(
    build: Callable[[], Any], stack: str, config: dict[str, str], secret_keys: list[str]
) -> PulumiRun:
    _ensure_event_loop()
    mocks = RecordingMocks()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=monitor)
    pulumi.runtime.set_all_config(config, secret_keys=secret_keys)
    exports: list[tuple[dict[str, Any], set[str]]] = []

    async def keep_exports() -> None:
        exports.append(await resolved_exports())

    @pulumi.runtime.test
    def program():
        build()
        # The decorator awaits what the test returns (here: every export, resolved) before it returns.
        return keep_exports()

    program()
    ((values, secret),) = exports
    return PulumiRun(monitor.recorded, values, secret, mocks.invocations)


def _ensure_event_loop() -> None:
    """Pulumi drives the program on the thread's current event loop. `asyncio.run()` elsewhere in the
    same process (the e2e load client, say) leaves the thread with none, so set a fresh one then."""
    policy = asyncio.get_event_loop_policy()
    try:
        loop = policy.get_event_loop()
    except RuntimeError:
        loop = None
    if loop is None or loop.is_closed():
        policy.set_event_loop(policy.new_event_loop())


def stack_config(
    stack: str, overrides: dict[str, str] | None = None, without: Iterable[str] = ()
) -> dict[str, str]:
    """What `pulumi up -s <stack>` would hand the program, with test ids standing in for placeholder (or
    missing) account ids and every secret in `TEST_SECRETS` filled in. `without` removes keys (fully
    qualified) to test what happens when they are missing."""
    from_files = stack_settings(stack)
    identity = {
        key: value
        for key, value in TEST_IDENTITY.items()
        if from_files.get(key, PLACEHOLDER_PREFIX).startswith(PLACEHOLDER_PREFIX)
    }
    config = {**from_files, **identity, **TEST_SECRETS, **(overrides or {})}
    for key in without:
        config.pop(key, None)
    return config
