"""Uploads the model GGUF to the R2 bucket (S3-compatible API) with its sha256 in the object metadata.

The GPU runtime downloads it at start and checks that digest (RUNTIME_MODEL_SHA256), so the object key
and digest are this component's outputs. An upload is skipped when the object already carries the same
digest, so re-running `pulumi up` never re-sends hundreds of megabytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

from infra.components.digest_provider import DigestProvider

SHA256_METADATA = "sha256"


def _s3_client(props: dict[str, Any]):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=props["endpoint"],
        region_name="auto",
        aws_access_key_id=props["access_key_id"],
        aws_secret_access_key=props["secret_access_key"],
        # R2 does not accept every checksum mode newer botocore sends by default.
        config=Config(
            request_checksum_calculation="when_required", response_checksum_validation="when_required"
        ),
    )


def stored_sha256(client, bucket: str, key: str) -> str | None:
    """The digest recorded on the object, or None when there is no such object."""
    from botocore.exceptions import ClientError

    try:
        head = client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return head.get("Metadata", {}).get(SHA256_METADATA)


def upload_if_changed(client, bucket: str, key: str, path: Path, sha256: str) -> bool:
    """Upload `path` unless the object already has `sha256`; True when it uploaded."""
    if stored_sha256(client, bucket, key) == sha256:
        return False
    client.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {SHA256_METADATA: sha256}})
    return True


class ModelObjectProvider(DigestProvider):
    """Deleting the resource leaves the object: the stored state holds no credentials (Pulumi hands
    delete only that), and the object goes with the bucket."""

    location_keys = ("endpoint", "bucket", "key")
    digest_key = "sha256"
    extra_state_keys = ("size",)

    def apply(self, props: dict[str, Any]) -> None:
        upload_if_changed(
            _s3_client(props), props["bucket"], props["key"], Path(props["path"]), props["sha256"]
        )

    def resource_id(self, props: dict[str, Any]) -> str:
        return f"{props['bucket']}/{props['key']}"


class ModelObject(pulumi.dynamic.Resource):
    key: pulumi.Output[str]
    sha256: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(ModelObjectProvider(), name, props, opts)


@dataclass(frozen=True)
class ModelArtifactArgs:
    endpoint: str
    bucket: pulumi.Input[str]
    path: Path
    sha256: str
    access_key_id: pulumi.Input[str]
    secret_access_key: pulumi.Input[str]

    @property
    def key(self) -> str:
        return f"models/{self.path.name}"


class ModelArtifact(pulumi.ComponentResource):
    def __init__(self, name: str, args: ModelArtifactArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("steadytext:cloudflare:ModelArtifact", name, None, opts)
        self.object = ModelObject(
            f"{name}-object",
            {
                "endpoint": args.endpoint,
                "bucket": args.bucket,
                "key": args.key,
                "path": str(args.path),
                "sha256": args.sha256,
                "size": args.path.stat().st_size,
                "access_key_id": pulumi.Output.secret(args.access_key_id),
                "secret_access_key": pulumi.Output.secret(args.secret_access_key),
            },
            pulumi.ResourceOptions(parent=self),
        )
        self.bucket = pulumi.Output.from_input(args.bucket)
        self.key = self.object.key
        self.sha256 = self.object.sha256
        self.url = pulumi.Output.concat("s3://", self.bucket, "/", self.key)
        self.register_outputs(
            {"bucket": self.bucket, "key": self.key, "sha256": self.sha256, "url": self.url}
        )
