"""The token of a Logpush ownership challenge, read once.

Cloudflare proves it may write to a bucket by writing a token file there (`LogpushOwnershipChallenge`);
the `LogpushJob` is created with that token. The file is short-lived by design: Cloudflare says to
delete it once the job exists, the token expires after 7 days, and here it lies under the log prefix the
bucket's lifecycle rule expires. Reading it with an invoke (`aws.s3.get_object`) would read it again at
every preview and update, and the stack would stop deploying once the file is gone. So this dynamic
resource reads it in `create` only, keeps the token in its state (a secret output), and never reads it
again: its diff compares the bucket and file name (a new challenge means a new file, read afresh) and
refresh returns the state as it is.

The deploying machine's AWS credentials (boto3's default chain, as for the AWS provider) read the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, ResourceProvider


class ChallengeError(RuntimeError):
    pass


def challenge_object_key(bucket: str, filename: str) -> str:
    """The object key of the challenge file. The API reference gives the name relative to the bucket
    (`logs/challenge-filename.txt`), one of Cloudflare's tutorials with the bucket in front
    (`burritobot/logs/…`): both forms lead to the same key."""
    return filename.lstrip("/").removeprefix(f"{bucket}/")


def read_challenge_token(region: str, bucket: str, key: str) -> str:
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        body = boto3.client("s3", region_name=region).get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NotFound"):
            raise ChallengeError(
                f"Cloudflare's ownership challenge file s3://{bucket}/{key} does not exist. It is read "
                "only while the Logpush job is first created; if that is days after the challenge, "
                "request a new one: pulumi up --replace '<the LogpushOwnershipChallenge URN>'"
            ) from None
        raise ChallengeError(
            f"cannot read the ownership challenge s3://{bucket}/{key}: [{code}] {error}"
        ) from None
    except BotoCoreError as error:
        raise ChallengeError(f"cannot read the ownership challenge s3://{bucket}/{key}: {error}") from None
    token = body.decode("utf-8", errors="replace").strip()
    if not token:
        raise ChallengeError(f"the ownership challenge file s3://{bucket}/{key} is empty")
    return token


class ChallengeTokenProvider(ResourceProvider):
    def create(self, props: dict[str, Any]) -> CreateResult:
        bucket = props["bucket"]
        if props.get("valid") is False:
            raise ChallengeError(
                f"Cloudflare reports the ownership challenge for bucket {bucket} as not valid: "
                f"{props.get('message') or 'no message'} (the bucket policy must let Cloudflare's Logpush "
                "user write under the log prefix)"
            )
        key = challenge_object_key(bucket, props["filename"])
        token = read_challenge_token(props["region"], bucket, key)
        return CreateResult(
            id_=f"{bucket}/{key}",
            outs={"bucket": bucket, "filename": props["filename"], "key": key, "token": token},
        )

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        # Never an in-place update (there is nothing to re-read); a new file is a new resource.
        replaces = [key for key in ("bucket", "filename") if olds.get(key) != news.get(key)]
        return DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

    # No read override: `pulumi refresh` keeps the state (the file may be long gone). No delete: the file
    # belongs to the bucket's lifecycle.


@dataclass(frozen=True)
class ChallengeTokenArgs:
    bucket: pulumi.Input[str]
    region: pulumi.Input[str]
    challenge: Any  # the cloudflare.LogpushOwnershipChallenge whose file to read


class ChallengeToken(pulumi.dynamic.Resource):
    key: pulumi.Output[str]
    token: pulumi.Output[str]

    def __init__(self, name: str, args: ChallengeTokenArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__(
            ChallengeTokenProvider(),
            name,
            {
                "bucket": args.bucket,
                "region": args.region,
                "filename": args.challenge.filename,
                "valid": args.challenge.valid,
                "message": args.challenge.message,
                "key": None,
                "token": None,
            },
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["token"])),
        )
