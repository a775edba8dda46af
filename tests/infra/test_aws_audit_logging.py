"""Audit logging: a private, encrypted, versioned, expiring S3 bucket that only Cloudflare's Logpush user may
write to, and the ownership challenge answered inside the deploy, in order, for each of the three jobs."""

from __future__ import annotations

import json

import pytest

from infra.components.aws.audit_logging import DATASET_FIELDS, LOGPUSH_PRINCIPAL
from pulumi_offline.aws import challenge_token_for
from tests.infra.aws_harness import aws_run
from tests.infra.conftest import TEST_ACCOUNT_ID, plaintext_leaks

STACKS = ["dev", "prod"]
CHALLENGE = "cloudflare:index/logpushOwnershipChallenge:LogpushOwnershipChallenge"
JOB = "cloudflare:index/logpushJob:LogpushJob"
DYNAMIC = "pulumi-python:dynamic:Resource"


def bucket_policy(run) -> dict:
    return json.loads(run.one("aws:s3/bucketPolicy:BucketPolicy").input("policy"))


@pytest.mark.parametrize("stack", STACKS)
def test_the_bucket_is_private_encrypted_versioned_and_expires_logs(stack):
    run = aws_run(stack)
    bucket = run.one("aws:s3/bucket:Bucket")
    bucket_id = f"{bucket.name}-id"
    block = run.one("aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert block.input("bucket") == bucket_id
    assert all(
        block.input(flag) is True
        for flag in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
    )
    encryption = run.one(
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
    )
    assert encryption.input("bucket") == bucket_id
    assert encryption.input("rules")[0]["applyServerSideEncryptionByDefault"] == {"sseAlgorithm": "AES256"}
    versioning = run.one("aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.input("versioningConfiguration") == {"status": "Enabled"}
    ownership = run.one("aws:s3/bucketOwnershipControls:BucketOwnershipControls")
    assert ownership.input("rule") == {"objectOwnership": "BucketOwnerEnforced"}  # no ACL can open it
    (rule,) = run.one("aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration").input("rules")
    assert rule["status"] == "Enabled"
    assert rule["expiration"] == {"days": {"dev": 30, "prod": 365}[stack]}
    assert rule["abortIncompleteMultipartUpload"] == {"daysAfterInitiation": 1}


@pytest.mark.parametrize("stack", STACKS)
def test_the_bucket_policy_admits_only_the_logpush_principal_under_its_prefix(stack):
    run = aws_run(stack)
    bucket_arn = f"arn:aws:s3:::{run.one('aws:s3/bucket:Bucket').name}-0a1b2c3"
    allows = [s for s in bucket_policy(run)["Statement"] if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Sid": "CloudflareLogpushWrite",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::391854517948:user/cloudflare-logpush"},
            "Action": "s3:PutObject",
            "Resource": f"{bucket_arn}/cloudflare/*",
        }
    ]
    assert allows[0]["Principal"]["AWS"] == LOGPUSH_PRINCIPAL
    denies = [s for s in bucket_policy(run)["Statement"] if s["Effect"] == "Deny"]
    assert denies[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


@pytest.mark.parametrize("stack", STACKS)
def test_every_job_answers_its_own_ownership_challenge_in_order(stack):
    run = aws_run(stack)
    bucket = run.one("aws:s3/bucket:Bucket")
    policy = run.one("aws:s3/bucketPolicy:BucketPolicy")
    challenges = {r.name: r for r in run.of_type(CHALLENGE)}
    readers = {r.name: r for r in run.of_type(DYNAMIC) if "filename" in r.inputs}
    jobs = run.of_type(JOB)
    assert sorted(job.input("dataset") for job in jobs) == sorted(DATASET_FIELDS)
    for job in jobs:
        challenge = challenges[job.name]
        destination = job.input("destinationConf")
        # 1. the challenge is for the byte-identical destination, under the prefix the policy opens …
        assert challenge.input("destinationConf") == destination
        assert destination == (
            f"s3://{bucket.name}-0a1b2c3/cloudflare/{job.input('dataset')}/{{DATE}}?region=us-east-1"
        )
        # … and is only requested once the policy lets Cloudflare write the challenge file;
        assert policy.urn in challenge.dependencies
        # 2. the deploy reads the file Cloudflare names, from this bucket (once: see test_logpush_challenge);
        reader = readers[job.name]
        filename = reader.input("filename")
        assert filename.startswith(f"cloudflare/{job.input('dataset')}/")
        assert challenge.urn in reader.property_dependencies["filename"]
        assert reader.input("bucket") == f"{bucket.name}-0a1b2c3"
        assert reader.input("region") == "us-east-1"
        # 3. the job presents the token from that file, still secret.
        assert job.input("ownershipChallenge") == challenge_token_for(filename)
        assert plaintext_leaks(job.inputs, [challenge_token_for(filename)]) == []
        assert job.input("accountId") == challenge.input("accountId") == TEST_ACCOUNT_ID
        assert job.input("enabled") is True


@pytest.mark.parametrize("stack", STACKS)
def test_each_job_names_an_explicit_field_list(stack):
    for job in aws_run(stack).of_type(JOB):
        fields = job.input("outputOptions")["fieldNames"]
        assert fields == DATASET_FIELDS[job.input("dataset")]
    assert {"UploadMatchedDlpProfiles", "DownloadMatchedDlpProfiles"} <= set(DATASET_FIELDS["gateway_http"])
    assert {"Outcome", "ScriptName", "Exceptions"} <= set(DATASET_FIELDS["workers_trace_events"])
    assert {"Allowed", "AppUUID", "Email"} <= set(DATASET_FIELDS["access_requests"])


def test_prod_protects_the_bucket_and_dev_can_tear_it_down():
    dev = aws_run("dev").one("aws:s3/bucket:Bucket")
    prod = aws_run("prod").one("aws:s3/bucket:Bucket")
    assert (dev.protect, prod.protect) == (False, True)
    assert (dev.input("forceDestroy"), prod.input("forceDestroy")) == (True, False)
