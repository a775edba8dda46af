"""The model upload provider against moto's S3 server (R2 speaks the S3 API): uploads with the sha256 in
the object metadata, skips when the same digest is already there, re-uploads when it changes."""

from __future__ import annotations

import hashlib

import pytest

from infra.components.cloudflare.model_artifact import ModelObjectProvider, stored_sha256
from tests.conftest import moto_s3_client

BUCKET = "steadytext-test-models"
KEY = "models/tiny.gguf"


@pytest.fixture
def s3(moto_s3_endpoint):
    client = moto_s3_client(moto_s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def model(tmp_path, content: bytes):
    path = tmp_path / "tiny.gguf"
    path.write_bytes(content)
    return path, hashlib.sha256(content).hexdigest()


def props(endpoint: str, path, sha256: str) -> dict:
    return {
        "endpoint": endpoint,
        "bucket": BUCKET,
        "key": KEY,
        "path": str(path),
        "sha256": sha256,
        "size": path.stat().st_size,
        "access_key_id": "test-key",
        "secret_access_key": "test-secret",
    }


def body(s3) -> bytes:
    return s3.get_object(Bucket=BUCKET, Key=KEY)["Body"].read()


def test_create_uploads_the_file_with_its_digest(s3, moto_s3_endpoint, tmp_path):
    path, sha = model(tmp_path, b"GGUF" + b"\x01" * 4096)
    result = ModelObjectProvider().create(props(moto_s3_endpoint, path, sha))
    assert body(s3) == path.read_bytes()
    assert stored_sha256(s3, BUCKET, KEY) == sha
    assert result.id == f"{BUCKET}/{KEY}"
    assert result.outs == {
        "endpoint": moto_s3_endpoint,
        "bucket": BUCKET,
        "key": KEY,
        "sha256": sha,
        "size": path.stat().st_size,
    }


def test_the_same_digest_is_not_uploaded_again(s3, moto_s3_endpoint, tmp_path):
    path, sha = model(tmp_path, b"GGUF" + b"\x02" * 4096)
    # An object already carrying this digest (its bytes differ, so a re-upload would show).
    s3.put_object(Bucket=BUCKET, Key=KEY, Body=b"already there", Metadata={"sha256": sha})
    ModelObjectProvider().create(props(moto_s3_endpoint, path, sha))
    assert body(s3) == b"already there"


def test_a_new_digest_replaces_the_object(s3, moto_s3_endpoint, tmp_path):
    provider = ModelObjectProvider()
    old_path, old_sha = model(tmp_path, b"GGUF old")
    created = provider.create(props(moto_s3_endpoint, old_path, old_sha))
    new_path, new_sha = model(tmp_path, b"GGUF new model bytes")
    news = props(moto_s3_endpoint, new_path, new_sha)
    diff = provider.diff(created.id, created.outs, news)
    assert diff.changes is True and diff.replaces == []
    provider.update(created.id, created.outs, news)
    assert body(s3) == b"GGUF new model bytes"
    assert stored_sha256(s3, BUCKET, KEY) == new_sha


def test_diff_is_quiet_for_the_same_model_and_replaces_on_a_new_key(moto_s3_endpoint, tmp_path):
    path, sha = model(tmp_path, b"GGUF same")
    olds = {"endpoint": moto_s3_endpoint, "bucket": BUCKET, "key": KEY, "sha256": sha, "size": 9}
    provider = ModelObjectProvider()
    assert provider.diff("id", olds, props(moto_s3_endpoint, path, sha)).changes is False
    moved = provider.diff("id", olds, {**props(moto_s3_endpoint, path, sha), "key": "models/other.gguf"})
    assert moved.changes is True and moved.replaces == ["key"]


def test_a_missing_object_has_no_digest(s3):
    assert stored_sha256(s3, BUCKET, "models/absent.gguf") is None
