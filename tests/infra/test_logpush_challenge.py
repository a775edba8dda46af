"""The Logpush ownership challenge is read once, when its reader is created, and never again: a later
preview or update whose challenge file is gone (deleted as Cloudflare advises, or expired by the bucket's
lifecycle rule) still goes through. The reader runs against moto's S3 server; the program under mocks."""

from __future__ import annotations

import pytest

from infra.components.cloudflare.logpush_challenge import (
    ChallengeError,
    ChallengeTokenProvider,
    challenge_object_key,
)
from pulumi_offline import INVOKE_RESULTS
from pulumi_offline.aws import challenge_token_for
from tests.conftest import moto_s3_client
from tests.infra.aws_harness import run_with

BUCKET = "steadytext-audit-test"
KEY = "cloudflare/access_requests/20261123/ownership-challenge-1a2b3c4d.txt"
TOKEN = "eyJhbGciOiJI.challenge-token-from-cloudflare"
GET_OBJECT = "aws:s3/getObject:getObject"


@pytest.fixture
def s3(moto_s3_endpoint, monkeypatch):
    """An audit bucket like the program's (versioned: a deleted or expired file leaves a delete marker),
    and boto3's default credential chain pointed at moto, as the deploying machine's would be at AWS."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    client = moto_s3_client(moto_s3_endpoint)
    client.create_bucket(Bucket=BUCKET)
    client.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    client.put_object(
        Bucket=BUCKET, Key=KEY, Body=f"{TOKEN}\n".encode(), ContentType="application/octet-stream"
    )
    yield client
    versions = client.list_object_versions(Bucket=BUCKET)
    for item in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"], VersionId=item["VersionId"])
    client.delete_bucket(Bucket=BUCKET)


def inputs(filename: str = KEY, valid: bool = True, message: str = "") -> dict:
    """What the program hands the reader: the challenge's outputs, the bucket and its region."""
    return {"bucket": BUCKET, "region": "us-east-1", "filename": filename, "valid": valid, "message": message}


def test_create_reads_the_token_cloudflare_wrote(s3):
    created = ChallengeTokenProvider().create(inputs())
    assert created.outs["token"] == TOKEN
    assert created.outs["key"] == KEY
    assert created.id == f"{BUCKET}/{KEY}"


def test_a_filename_with_the_bucket_in_front_names_the_same_object(s3):
    assert challenge_object_key(BUCKET, f"{BUCKET}/{KEY}") == KEY
    assert challenge_object_key(BUCKET, KEY) == KEY
    assert ChallengeTokenProvider().create(inputs(filename=f"{BUCKET}/{KEY}")).outs["token"] == TOKEN


def test_a_challenge_cloudflare_reports_invalid_stops_with_its_message(s3):
    with pytest.raises(ChallengeError, match=r"not valid: Could not write to the bucket: AccessDenied"):
        ChallengeTokenProvider().create(
            inputs(valid=False, message="Could not write to the bucket: AccessDenied")
        )


def test_a_missing_file_at_creation_names_it_and_the_way_out(s3):
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    with pytest.raises(ChallengeError, match=rf"s3://{BUCKET}/{KEY} does not exist.*pulumi up --replace"):
        ChallengeTokenProvider().create(inputs())


def test_a_later_run_after_the_file_is_gone_changes_nothing_and_reads_nothing(s3):
    provider = ChallengeTokenProvider()
    state = provider.create(inputs()).outs
    # Day 31: the lifecycle rule expired the file (versioned bucket: a delete marker, GetObject → 404).
    s3.delete_object(Bucket=BUCKET, Key=KEY)
    with pytest.raises(s3.exceptions.NoSuchKey):
        s3.get_object(Bucket=BUCKET, Key=KEY)
    diff = provider.diff(f"{BUCKET}/{KEY}", state, inputs())
    assert diff.changes is False and diff.replaces == []
    # `pulumi refresh` keeps the state as it is (the provider reads nothing).
    refreshed = provider.read(f"{BUCKET}/{KEY}", state)
    assert refreshed.outs["token"] == TOKEN


def test_a_new_challenge_is_a_new_reader_that_reads_its_new_file(s3):
    provider = ChallengeTokenProvider()
    state = provider.create(inputs()).outs
    new_key = KEY.replace("1a2b3c4d", "5e6f7a8b")
    s3.put_object(Bucket=BUCKET, Key=new_key, Body=b"the-new-token")
    diff = provider.diff(f"{BUCKET}/{KEY}", state, inputs(filename=new_key))
    assert diff.changes is True and diff.replaces == ["filename"]
    assert provider.create(inputs(filename=new_key)).outs["token"] == "the-new-token"


def test_the_program_reads_no_challenge_file_at_preview_or_update(monkeypatch):
    def gone(args: dict) -> dict:
        raise RuntimeError(f"NoSuchKey: s3://{args['bucket']}/{args['key']} (404)")

    # Any read of a challenge file on this run would answer 404, as on day 31.
    monkeypatch.setitem(INVOKE_RESULTS, GET_OBJECT, gone)
    run = run_with("dev", {})
    assert [token for token, _ in run.invocations if token == GET_OBJECT] == []
    jobs = run.of_type("cloudflare:index/logpushJob:LogpushJob")
    readers = [r for r in run.of_type("pulumi-python:dynamic:Resource") if "filename" in r.inputs]
    assert len(jobs) == len(readers) == 3
    for reader in readers:
        # The token is kept in the reader's state, encrypted (a secret output).
        assert reader.additional_secret_outputs == ["token"]
    assert sorted(run.outputs["auditChallengeFiles"]) == sorted(r.input("filename") for r in readers)
    assert all(job.input("ownershipChallenge").startswith("CHALLENGE-") for job in jobs)
    assert {job.input("ownershipChallenge") for job in jobs} == {
        challenge_token_for(r.input("filename")) for r in readers
    }
