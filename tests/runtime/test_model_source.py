"""Model sources: the bundled package, a local file, and S3 (moto's real HTTP server standing in for R2)."""

import hashlib
import os

import pytest

from runtime.config.model_source import ModelSourceError, resolve_model, sha256_of
from tests.conftest import moto_s3_client
from tests.runtime.conftest import runtime_settings

BUNDLED_SHA = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
PAYLOAD = os.urandom(3 * 1024 * 1024 + 17)  # several download blocks, not a multiple of one
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def test_bundled_model_is_assembled_once_and_verified(tmp_path):
    model = resolve_model(runtime_settings(model_cache_dir=tmp_path))
    assert model.sha256 == BUNDLED_SHA == sha256_of(model.path)
    assert model.path.parent == tmp_path and model.name == "gemma-3-270m-q4_k_m"
    assert [p.name for p in tmp_path.iterdir()] == [model.path.name]  # no temp file left behind
    mtime = model.path.stat().st_mtime_ns
    assert resolve_model(runtime_settings(model_cache_dir=tmp_path)).path.stat().st_mtime_ns == mtime


def test_local_path_with_matching_and_mismatching_digest(tmp_path):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(PAYLOAD)
    assert resolve_model(runtime_settings(model_path=path, model_sha256=PAYLOAD_SHA)).sha256 == PAYLOAD_SHA
    wrong = "0" * 64
    with pytest.raises(ModelSourceError) as caught:
        resolve_model(runtime_settings(model_path=path, model_sha256=wrong))
    assert wrong in str(caught.value) and PAYLOAD_SHA in str(caught.value)


def test_missing_local_path_is_refused(tmp_path):
    with pytest.raises(ModelSourceError, match="is not a file"):
        resolve_model(runtime_settings(model_path=tmp_path / "absent.gguf"))


@pytest.fixture(scope="module")
def s3_endpoint(moto_s3_endpoint):
    s3 = moto_s3_client(moto_s3_endpoint)
    s3.create_bucket(Bucket="models")
    s3.put_object(Bucket="models", Key="good/model.gguf", Body=PAYLOAD)
    corrupted = bytearray(PAYLOAD)
    corrupted[len(corrupted) // 2] ^= 0xFF
    s3.put_object(Bucket="models", Key="corrupted/model.gguf", Body=bytes(corrupted))
    return moto_s3_endpoint


@pytest.fixture()
def s3_credentials(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def s3_settings(endpoint: str, cache_dir, key: str, sha256: str = PAYLOAD_SHA):
    return runtime_settings(
        model_url=f"s3://models/{key}",
        model_sha256=sha256,
        s3_endpoint_url=endpoint,
        model_cache_dir=cache_dir,
    )


def test_s3_download_is_verified_cached_and_shows_progress(s3_endpoint, s3_credentials, tmp_path, capfd):
    model = resolve_model(s3_settings(s3_endpoint, tmp_path, "good/model.gguf"))
    assert model.path == tmp_path / PAYLOAD_SHA / "model.gguf"
    assert model.path.read_bytes() == PAYLOAD
    assert "good/model.gguf" in capfd.readouterr().err  # the progress bar goes to stderr
    mtime = model.path.stat().st_mtime_ns
    assert (
        resolve_model(s3_settings(s3_endpoint, tmp_path, "good/model.gguf")).path.stat().st_mtime_ns == mtime
    )


def test_corrupted_object_is_refused_and_nothing_is_kept(s3_endpoint, s3_credentials, tmp_path):
    with pytest.raises(ModelSourceError) as caught:
        resolve_model(s3_settings(s3_endpoint, tmp_path, "corrupted/model.gguf"))
    message = str(caught.value)
    assert PAYLOAD_SHA in message and "refusing to start" in message
    corrupted_sha = message.split("got ")[1].split(";")[0]
    assert len(corrupted_sha) == 64 and corrupted_sha != PAYLOAD_SHA
    assert list((tmp_path / PAYLOAD_SHA).iterdir()) == []  # the temp file is gone, no half model


def test_corrupted_cache_file_is_downloaded_again(s3_endpoint, s3_credentials, tmp_path):
    cached = tmp_path / PAYLOAD_SHA / "model.gguf"
    cached.parent.mkdir()
    cached.write_bytes(b"truncated")
    assert resolve_model(s3_settings(s3_endpoint, tmp_path, "good/model.gguf")).path.read_bytes() == PAYLOAD


def test_missing_object_names_the_url(s3_endpoint, s3_credentials, tmp_path):
    with pytest.raises(ModelSourceError, match="s3://models/absent.gguf"):
        resolve_model(s3_settings(s3_endpoint, tmp_path, "absent.gguf"))
