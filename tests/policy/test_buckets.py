import json

from infra.policy.model import S3_BUCKET_POLICY, S3_PUBLIC_ACCESS_BLOCK
from infra.policy.rules.buckets import s3_buckets_encrypted_and_private
from tests.policy.conftest import res, violations

BUCKET = "aws:s3/bucket:Bucket"
ENCRYPTION = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"
ALL_BLOCKED = {
    "blockPublicAcls": True,
    "blockPublicPolicy": True,
    "ignorePublicAcls": True,
    "restrictPublicBuckets": True,
}
LOGPUSH_WRITE = {
    "Effect": "Allow",
    "Principal": {"AWS": "arn:aws:iam::391854517948:user/cloudflare-logpush"},
    "Action": "s3:PutObject",
    "Resource": "arn:aws:s3:::audit/*",
}


def audit_bucket(**props):
    return res(BUCKET, "audit", {"forceDestroy": False, **props})


def encryption(bucket, algorithm="aws:kms"):
    return res(
        ENCRYPTION,
        "audit-sse",
        {
            "bucket": "audit-id",
            "rules": [{"applyServerSideEncryptionByDefault": {"sseAlgorithm": algorithm}}],
        },
        deps={"bucket": [bucket]},
    )


def block(bucket, **flags):
    return res(
        S3_PUBLIC_ACCESS_BLOCK,
        "audit-pab",
        {"bucket": "audit-id", **ALL_BLOCKED, **flags},
        deps={"bucket": [bucket]},
    )


def policy(bucket, *statements):
    document = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    return res(
        S3_BUCKET_POLICY,
        "audit-policy",
        {"bucket": "audit-id", "policy": document},
        deps={"bucket": [bucket]},
    )


def test_an_encrypted_bucket_blocking_public_access_passes():
    bucket = audit_bucket()
    assert (
        violations(
            s3_buckets_encrypted_and_private,
            bucket,
            encryption(bucket),
            block(bucket),
            policy(bucket, LOGPUSH_WRITE),
        )
        == []
    )


def test_inline_encryption_counts_too():
    bucket = audit_bucket(
        serverSideEncryptionConfiguration={
            "rule": {"applyServerSideEncryptionByDefault": {"sseAlgorithm": "AES256"}}
        }
    )
    assert violations(s3_buckets_encrypted_and_private, bucket, block(bucket)) == []


def test_an_unencrypted_bucket_fails():
    bucket = audit_bucket()
    [message] = violations(s3_buckets_encrypted_and_private, bucket, block(bucket))
    assert "'audit' has no server-side encryption" in message


def test_a_bucket_without_a_full_public_access_block_fails():
    bucket = audit_bucket()
    [message] = violations(
        s3_buckets_encrypted_and_private,
        bucket,
        encryption(bucket),
        block(bucket, restrictPublicBuckets=False),
    )
    assert "no public access block" in message
    assert len(violations(s3_buckets_encrypted_and_private, bucket, encryption(bucket))) == 1


def test_a_public_acl_or_an_anyone_policy_fails():
    bucket = audit_bucket(acl="public-read")
    anyone = {
        "Sid": "PublicRead",
        "Effect": "Allow",
        "Principal": "*",
        "Action": "s3:GetObject",
        "Resource": "arn:aws:s3:::audit/*",
    }
    found = violations(
        s3_buckets_encrypted_and_private,
        bucket,
        encryption(bucket),
        block(bucket),
        policy(bucket, LOGPUSH_WRITE, anyone),
    )
    assert len(found) == 2
    assert any("public ACL public-read" in m for m in found)
    assert any("statement PublicRead" in m for m in found)
