"""Settings from RUNTIME_* variables and CLI flags, and errors that name the variable to fix."""

import pytest
from pydantic import ValidationError

from runtime.__main__ import parse_overrides
from runtime.config.settings import RuntimeSettings, describe_settings_error

SHA = "a" * 64


def settings_from_env(monkeypatch, **env: str) -> RuntimeSettings:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return RuntimeSettings()


def test_defaults(monkeypatch):
    for name in ("RUNTIME_PORT", "RUNTIME_N_GPU_LAYERS", "RUNTIME_AUTH_TOKEN", "RUNTIME_MODEL_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = RuntimeSettings()
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.n_gpu_layers == 0 and settings.default_seed == 42
    assert settings.auth_token is None and settings.model_path is None


def test_environment_variables_are_read(monkeypatch):
    settings = settings_from_env(
        monkeypatch,
        RUNTIME_PORT="9001",
        RUNTIME_N_GPU_LAYERS="-1",
        RUNTIME_QUEUE_SIZE="3",
        RUNTIME_MODEL_URL="s3://models/gemma/model.gguf",
        RUNTIME_MODEL_SHA256=SHA.upper(),
        RUNTIME_S3_ENDPOINT_URL="https://acct.r2.cloudflarestorage.com",
        RUNTIME_AUTH_TOKEN="zq-secret-77",
    )
    assert settings.port == 9001 and settings.n_gpu_layers == -1 and settings.queue_size == 3
    assert settings.s3_location == ("models", "gemma/model.gguf")
    assert settings.model_sha256 == SHA
    assert settings.auth_token.get_secret_value() == "zq-secret-77"
    assert "zq-secret-77" not in repr(settings)  # a secret never shows up in logs


@pytest.mark.parametrize(
    ("env", "tenant_queue_size"),
    [
        ({}, 8),
        ({"RUNTIME_QUEUE_SIZE": "1"}, 1),
        ({"RUNTIME_QUEUE_SIZE": "5"}, 2),
        ({"RUNTIME_QUEUE_SIZE": "5", "RUNTIME_QUEUE_SIZE_PER_TENANT": "5"}, 5),
    ],
)
def test_one_tenant_may_fill_half_the_queue_unless_told_otherwise(monkeypatch, env, tenant_queue_size):
    for name in ("RUNTIME_QUEUE_SIZE", "RUNTIME_QUEUE_SIZE_PER_TENANT"):
        monkeypatch.delenv(name, raising=False)
    assert settings_from_env(monkeypatch, **env).tenant_queue_size == tenant_queue_size


def test_empty_variables_count_as_unset(monkeypatch):
    settings = settings_from_env(monkeypatch, RUNTIME_MODEL_URL="", RUNTIME_AUTH_TOKEN="")
    assert settings.model_url is None and settings.auth_token is None


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"RUNTIME_PORT": "70000"}, "RUNTIME_PORT"),
        ({"RUNTIME_PORT": "eighty"}, "RUNTIME_PORT"),
        ({"RUNTIME_N_CTX": "8"}, "RUNTIME_N_CTX"),
        ({"RUNTIME_QUEUE_SIZE": "0"}, "RUNTIME_QUEUE_SIZE"),
        ({"RUNTIME_QUEUE_SIZE_PER_TENANT": "0"}, "RUNTIME_QUEUE_SIZE_PER_TENANT"),
        ({"RUNTIME_QUEUE_SIZE": "4", "RUNTIME_QUEUE_SIZE_PER_TENANT": "5"}, "RUNTIME_QUEUE_SIZE_PER_TENANT"),
        ({"RUNTIME_MODEL_SHA256": "abc"}, "RUNTIME_MODEL_SHA256"),
        (
            {"RUNTIME_MODEL_URL": "https://example.com/model.gguf", "RUNTIME_MODEL_SHA256": SHA},
            "RUNTIME_MODEL_URL",
        ),
        ({"RUNTIME_MODEL_URL": "s3://bucket/model.gguf"}, "RUNTIME_MODEL_SHA256"),
        (
            {"RUNTIME_DEFAULT_MAX_TOKENS": "600", "RUNTIME_MAX_TOKENS_CAP": "512"},
            "RUNTIME_DEFAULT_MAX_TOKENS",
        ),
    ],
)
def test_invalid_settings_name_the_variable(monkeypatch, env, named):
    with pytest.raises(ValidationError) as caught:
        settings_from_env(monkeypatch, **env)
    assert named in describe_settings_error(caught.value)


def test_cli_flags_override_the_environment(monkeypatch):
    monkeypatch.setenv("RUNTIME_PORT", "9001")
    overrides = parse_overrides(["--port", "9100", "--host", "0.0.0.0", "--n-gpu-layers", "0"])
    assert overrides.pop("log_level") == "info"
    settings = RuntimeSettings(**overrides)
    assert (settings.host, settings.port, settings.n_gpu_layers) == ("0.0.0.0", 9100, 0)
