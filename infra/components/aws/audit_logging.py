"""Audit trail: Cloudflare Logpush jobs (Workers trace events, Access requests, Gateway HTTP with the DLP
verdicts) writing into a private, encrypted, versioned S3 bucket.

Cloudflare proves it may write to the bucket with an ownership challenge, handled inside the deploy: the
bucket policy admits Cloudflare's Logpush user under the log prefix → ``LogpushOwnershipChallenge`` makes
Cloudflare write a token file there → ``ChallengeToken`` reads it back, once, when it is created (never at
a later preview or update: the file expires, see logpush_challenge.py) → the ``LogpushJob`` presents it.
The token is bound to the exact ``destination_conf``, so each job has its own challenge on that string.
"""

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_cloudflare as cloudflare

from infra.components.cloudflare.logpush_challenge import ChallengeToken, ChallengeTokenArgs

# Cloudflare's documented Logpush identity (developers.cloudflare.com/logs/logpush/aws-s3/).
LOGPUSH_PRINCIPAL = "arn:aws:iam::391854517948:user/cloudflare-logpush"
LOG_PREFIX = "cloudflare"

# An explicit field list per dataset: what an audit needs, nothing the dashboard adds later by default.
DATASET_FIELDS: dict[str, list[str]] = {
    "workers_trace_events": [
        "EventTimestampMs",
        "EventType",
        "Outcome",
        "ScriptName",
        "ScriptVersion",
        "Entrypoint",
        "Event",
        "Exceptions",
        "Logs",
        "CPUTimeMs",
        "WallTimeMs",
    ],
    "access_requests": [
        "CreatedAt",
        "Action",
        "Allowed",
        "AppDomain",
        "AppUUID",
        "Connection",
        "Country",
        "Email",
        "IPAddress",
        "UserUID",
        "RayID",
    ],
    "gateway_http": [
        "Datetime",
        "AccountID",
        "Action",
        "PolicyID",
        "PolicyName",
        "Email",
        "UserID",
        "DeviceID",
        "SourceIP",
        "DestinationIP",
        "HTTPHost",
        "HTTPMethod",
        "HTTPStatusCode",
        "URL",
        "RequestID",
        "UploadMatchedDlpProfiles",
        "UploadMatchedDlpProfileEntries",
        "DownloadMatchedDlpProfiles",
        "DownloadMatchedDlpProfileEntries",
    ],
}


@dataclass(frozen=True)
class AuditLoggingArgs:
    cloudflare_account_id: str
    region: pulumi.Input[str]
    retention_days: int = 365
    protect: bool = False  # prod: the bucket cannot be deleted by a `pulumi destroy`
    tags: dict[str, str] = field(default_factory=dict)


def destination_conf(bucket: str, dataset: str, region: str) -> str:
    """The Logpush destination for one dataset; ``{DATE}`` makes Cloudflare write one folder per day."""
    return f"s3://{bucket}/{LOG_PREFIX}/{dataset}/{{DATE}}?region={region}"


def bucket_policy(bucket_arn: str) -> dict:
    """Only Cloudflare's Logpush user may write, only under the log prefix; plain HTTP is refused to all."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudflareLogpushWrite",
                "Effect": "Allow",
                "Principal": {"AWS": LOGPUSH_PRINCIPAL},
                "Action": "s3:PutObject",
                "Resource": f"{bucket_arn}/{LOG_PREFIX}/*",
            },
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [bucket_arn, f"{bucket_arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ],
    }


class AuditLogging(pulumi.ComponentResource):
    bucket_name: pulumi.Output[str]
    job_ids: dict[str, pulumi.Output[str]]
    challenge_files: pulumi.Output[list[str]]

    def __init__(self, name: str, args: AuditLoggingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("steadytext:aws:AuditLogging", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        bucket = aws.s3.Bucket(
            f"{name}-audit",
            force_destroy=not args.protect,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, protect=args.protect),
        )
        settings = [
            # ACLs off: Logpush's bucket-owner-full-control uploads still succeed and the account owns them.
            aws.s3.BucketOwnershipControls(
                f"{name}-audit",
                bucket=bucket.id,
                rule={"object_ownership": "BucketOwnerEnforced"},
                opts=child,
            ),
            aws.s3.BucketPublicAccessBlock(
                f"{name}-audit",
                bucket=bucket.id,
                block_public_acls=True,
                block_public_policy=True,
                ignore_public_acls=True,
                restrict_public_buckets=True,
                opts=child,
            ),
            aws.s3.BucketServerSideEncryptionConfiguration(
                f"{name}-audit",
                bucket=bucket.id,
                rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
                opts=child,
            ),
            aws.s3.BucketVersioning(
                f"{name}-audit", bucket=bucket.id, versioning_configuration={"status": "Enabled"}, opts=child
            ),
            aws.s3.BucketLifecycleConfiguration(
                f"{name}-audit",
                bucket=bucket.id,
                rules=[
                    {
                        "id": "expire-audit-logs",
                        "status": "Enabled",
                        "filter": {"prefix": f"{LOG_PREFIX}/"},
                        "expiration": {"days": args.retention_days},
                        "noncurrent_version_expiration": {"noncurrent_days": 30},
                        # Logpush uploads are multipart; aborted ones would otherwise be billed forever.
                        "abort_incomplete_multipart_upload": {"days_after_initiation": 1},
                    }
                ],
                opts=child,
            ),
        ]
        policy = aws.s3.BucketPolicy(
            f"{name}-audit",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(bucket_policy(arn))),
            # The public access block must be in place first, or S3 may judge the policy against no block.
            opts=pulumi.ResourceOptions(parent=self, depends_on=settings),
        )

        self.job_ids = {}
        challenge_keys = []
        for dataset, fields in DATASET_FIELDS.items():
            destination = pulumi.Output.all(bucket.bucket, args.region).apply(
                lambda values, dataset=dataset: destination_conf(values[0], dataset, values[1])
            )
            label = f"{name}-{dataset.replace('_', '-')}"
            challenge = cloudflare.LogpushOwnershipChallenge(
                label,
                account_id=args.cloudflare_account_id,
                destination_conf=destination,
                # Cloudflare writes the challenge file as the Logpush user: the policy must admit it first.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[policy]),
            )
            token = ChallengeToken(
                label,
                ChallengeTokenArgs(bucket=bucket.bucket, region=args.region, challenge=challenge),
                child,
            )
            challenge_keys.append(token.key)
            job = cloudflare.LogpushJob(
                label,
                account_id=args.cloudflare_account_id,
                dataset=dataset,
                name=label,
                enabled=True,
                destination_conf=destination,
                # Secret in state (the SDK marks the token and destination_conf secret). It changes only
                # with a new challenge, i.e. a new destination, which is exactly when the job needs it.
                ownership_challenge=pulumi.Output.secret(token.token),
                output_options={
                    "field_names": fields,
                    "output_type": "ndjson",
                    "timestamp_format": "rfc3339",
                },
                opts=child,
            )
            self.job_ids[dataset] = job.id

        self.bucket_name = bucket.bucket
        # Cloudflare advises deleting these once the jobs exist (docs/infra-aws.md shows how).
        self.challenge_files = pulumi.Output.all(*challenge_keys).apply(list)
        self.register_outputs(
            {
                "bucket_name": self.bucket_name,
                "job_ids": self.job_ids,
                "challenge_files": self.challenge_files,
            }
        )
