"""Stack config: both stack files load, and every bad or missing value fails naming its full key."""

from __future__ import annotations

import shlex

import pulumi
import pytest

from infra import config as stack_config_module
from infra.config import ConfigError, StackConfig
from infra.config.aws import RETIRED_KEYS as RETIRED_AWS_KEYS
from infra.config.cloudflare import RETIRED_KEYS as RETIRED_CLOUDFLARE_KEYS
from infra.config.stack_files import project_file
from tests.infra.conftest import PROJECT, TEST_SECRETS, run_pulumi, stack_config


def load(stack: str, overrides: dict[str, str] | None = None, without: tuple[str, ...] = ()) -> StackConfig:
    loaded: list[StackConfig] = []
    run_pulumi(
        lambda: loaded.append(stack_config_module.load()),
        stack=stack,
        config=stack_config(stack, overrides, without),
        secret_keys=TEST_SECRETS,
    )
    return loaded[0]


def config_error(stack: str, overrides: dict[str, str] | None = None, without: tuple[str, ...] = ()) -> str:
    with pytest.raises(ConfigError) as caught:
        load(stack, overrides, without)
    return str(caught.value)


def test_dev_and_prod_differ_where_the_stack_files_say():
    dev, prod = load("dev"), load("prod")
    assert (dev.stack, prod.stack) == ("dev", "prod")
    assert (dev.protect, prod.protect) == (False, True)
    assert (dev.cloudflare.access.require_device_posture, prod.cloudflare.access.require_device_posture) == (
        False,
        True,
    )
    assert dev.cloudflare.worker.dlp_policy == "redact" and prod.cloudflare.worker.dlp_policy == "block"
    assert dev.cloudflare.resource_prefix != prod.cloudflare.resource_prefix
    # Pulumi.yaml defaults fill what the stack file leaves out.
    assert dev.cloudflare.origin_port == 8000
    assert dev.cloudflare.worker.origin_fallback_url == ""
    assert dev.model.file is None


def test_the_committed_placeholders_are_rejected_with_the_key_and_an_example():
    message = config_error("prod", overrides={f"{PROJECT}:accountId": "REPLACE_WITH_CLOUDFLARE_ACCOUNT_ID"})
    assert f"config {PROJECT}:accountId:" in message
    assert "REPLACE_WITH_CLOUDFLARE_ACCOUNT_ID" in message
    assert f"pulumi config set {PROJECT}:accountId 0123456789abcdef0123456789abcdef" in message


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("originHostname", "Not A Host", "lower-case DNS hostname"),
        ("originHostname", "api-dev.example.com", "must differ from steadytext-edge:apiHostname"),
        ("originPort", "80000", "integer from 1 to 65535"),
        ("cacheTtlSeconds", "soon", "integer from 60 to 31536000"),
        ("cacheMaxAgeSeconds", "60", "must be at least steadytext-edge:cacheTtlSeconds (3600), got 60"),
        ("dlpPolicy", "ignore", "one of block, redact"),
        ("protectStatefulResources", "yes", "true or false"),
        ("accessEmailDomains", "example.com", "list of strings"),
        ("accessEmailDomains", '["not a domain"]', "items must be a DNS domain"),
        ("accessGroupIds", '["group-one"]', "Access group UUID"),
        ("accessSessionDuration", "1 day", "duration like 30m or 24h"),
        ("originFallbackUrl", "http://plain.example.com", "https:// URL"),
        ("modelFile", "no/such/model.gguf", "is not a file"),
        ("resourcePrefix", "Steady_Text", "lower-case letters"),
        ("dlpProfile", "enterprise", "one of custom, predefined"),
        ("gatewayTlsDecryption", "maybe", "one of declare, external"),
        ("serviceTokenSecretVersion", "0", "integer from 1 to 1000000"),
        ("receiptKeyVersion", "first", "integer from 1 to 1000000"),
    ],
)
def test_invalid_values_name_their_key(key, value, expected):
    message = config_error("dev", overrides={f"{PROJECT}:{key}": value})
    assert message.startswith(f"config {PROJECT}:{key}:")
    assert expected in message
    assert f"pulumi config set {PROJECT}:{key}" in message or f"'{PROJECT}:{key}[0]'" in message


@pytest.mark.parametrize("key", [f"{PROJECT}:zoneId", f"{PROJECT}:apiHostname", f"{PROJECT}:resourcePrefix"])
def test_missing_required_values_name_their_key(key):
    assert config_error("dev", without=(key,)).startswith(f"config {key}: is required but not set")


@pytest.mark.parametrize("key", sorted(TEST_SECRETS))
@pytest.mark.parametrize("how", ["missing", "blank"])
def test_missing_secrets_show_a_secret_config_set(key, how):
    message = config_error(
        "prod", **({"without": (key,)} if how == "missing" else {"overrides": {key: "  "}})
    )
    assert message.startswith(f"config {key}: is required but not set")
    assert f"pulumi config set --secret {key} " in message


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({f"{PROJECT}:accessEmailDomains": "example.com"}, "accessEmailDomains"),
        ({f"{PROJECT}:accessGroupIds": '["group-one"]'}, "accessGroupIds"),
        ({f"{PROJECT}:accessEmailDomains": "[]", f"{PROJECT}:accessGroupIds": "[]"}, "accessEmailDomains"),
    ],
)
def test_a_list_key_error_shows_a_command_pulumi_accepts(overrides, key):
    # `pulumi config set [key] [value]`: a list item is named by its path alone, not the key plus a path.
    command = config_error("dev", overrides=overrides).split("; for example: ", 1)[1]
    assert shlex.split(command)[:5] == ["pulumi", "config", "set", "--path", f"{PROJECT}:{key}[0]"]
    assert len(shlex.split(command)) == 6 and command.count(f"{PROJECT}:{key}") == 1


def test_the_gateway_choices_default_to_the_custom_profile_declared_by_the_stack():
    gateway = load("dev").cloudflare.gateway
    assert (gateway.tls_decryption, gateway.dlp_profile) == ("declare", "custom")
    assert load("dev").cloudflare.access.service_token_secret_version == 1
    assert load("dev").cloudflare.receipt_key_version == 1


def test_access_needs_someone_to_let_in():
    message = config_error(
        "dev", overrides={f"{PROJECT}:accessEmailDomains": "[]", f"{PROJECT}:accessGroupIds": "[]"}
    )
    assert f"config {PROJECT}:accessEmailDomains: is empty and so is {PROJECT}:accessGroupIds" in message


def test_secrets_are_outputs_marked_secret():
    loaded = load("dev")
    assert isinstance(loaded.cloudflare.origin_token, type(loaded.cloudflare.api_token))
    # A frozen dataclass: config is read once and cannot be changed by a component.
    with pytest.raises(AttributeError):
        loaded.cloudflare.account_id = "x"  # type: ignore[misc]


def test_every_key_the_program_reads_is_declared_in_pulumi_yaml(monkeypatch, run_program):
    """Pulumi.yaml is where operators look up a key's type, default and meaning: nothing the program
    reads may be missing there (secrets and provider keys are documented in docs/infra.md instead)."""
    read: set[str] = set()
    original = pulumi.Config._get

    def recording_get(self, key, *args, **kwargs):
        read.add(self.full_key(key))
        return original(self, key, *args, **kwargs)

    monkeypatch.setattr(pulumi.Config, "_get", recording_get)
    run_program("prod")
    declared = project_file()["config"]
    project_keys = {key.removeprefix(f"{PROJECT}:") for key in read if key.startswith(f"{PROJECT}:")}
    # A retired key is read only to refuse it with the fix; it must not be declared any more.
    retired = RETIRED_AWS_KEYS + RETIRED_CLOUDFLARE_KEYS
    assert set(retired).isdisjoint(declared)
    not_secret = project_keys - {key.removeprefix(f"{PROJECT}:") for key in TEST_SECRETS} - set(retired)
    assert not_secret - set(declared) == set()
    assert all(declared[key].get("description") for key in not_secret)


def test_pulumi_yaml_gives_every_key_a_type_description_and_default():
    declared = project_file()["config"]
    incomplete = [
        key for key, spec in declared.items() if not {"type", "description", "default"} <= set(spec)
    ]
    assert incomplete == []


def test_an_unset_hostname_stops_on_its_placeholder_default():
    placeholder = project_file()["config"]["apiHostname"]["default"]
    message = config_error("dev", overrides={f"{PROJECT}:apiHostname": placeholder})
    assert message.startswith(f"config {PROJECT}:apiHostname: must be a lower-case DNS hostname")
