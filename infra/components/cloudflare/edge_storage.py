"""The Worker's storage: D1 (persistent cache, metrics, API keys) migrated to the current schema, a KV
namespace (hot cache tier), the R2 bucket for model artifacts and the R2 buckets the Worker binds
(edge/wrangler.jsonc `r2_buckets`: the batch files).

Everything here holds data, so with `protect` (prod) each resource is protected and retained on
delete: a mistaken `pulumi destroy` or a replacement cannot wipe the cache or the models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_cloudflare as cf

from infra.components.cloudflare.d1_schema import CLOUDFLARE_API, D1Schema, D1SchemaArgs
from infra.d1_migrations import migrations_dir
from infra.wrangler_config import deployed_name, resource_role

# Model uploads (and large files dropped into a bucket) are multipart; parts of an upload that died must
# not linger (and bill) forever.
ABORT_INCOMPLETE_UPLOADS_AFTER_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class EdgeStorageArgs:
    account_id: str
    resource_prefix: str
    protect: bool
    api_token: pulumi.Input[str]
    # The buckets edge/wrangler.jsonc binds, by their local name (`bucket_name` there).
    worker_buckets: tuple[str, ...] = ()
    migrations_dir: Path = field(default_factory=migrations_dir)
    api_base: str = CLOUDFLARE_API


class EdgeStorage(pulumi.ComponentResource):
    def __init__(self, name: str, args: EdgeStorageArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("steadytext:cloudflare:EdgeStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect)

        self.database = cf.D1Database(
            f"{name}-d1",
            account_id=args.account_id,
            name=f"{args.resource_prefix}-cache",
            read_replication={"mode": "disabled"},
            opts=stateful,
        )
        self.schema = D1Schema(
            f"{name}-d1-schema",
            D1SchemaArgs(
                account_id=args.account_id,
                database_id=self.database.uuid,
                migrations_dir=args.migrations_dir,
                api_token=args.api_token,
                api_base=args.api_base,
            ),
            opts=child,
        )
        self.kv_namespace = cf.WorkersKvNamespace(
            f"{name}-kv",
            account_id=args.account_id,
            title=f"{args.resource_prefix}-cache",
            opts=stateful,
        )
        self.models_bucket = cf.R2Bucket(
            f"{name}-models",
            account_id=args.account_id,
            name=f"{args.resource_prefix}-models",
            opts=stateful,
        )
        self.models_lifecycle = abort_incomplete_uploads(
            f"{name}-models-lifecycle", args.account_id, self.models_bucket, child
        )
        self.worker_buckets: dict[str, cf.R2Bucket] = {}
        for local_name in args.worker_buckets:
            role = resource_role(local_name)
            bucket = cf.R2Bucket(
                f"{name}-bucket-{role}",
                account_id=args.account_id,
                name=deployed_name(local_name, args.resource_prefix),
                opts=stateful,
            )
            abort_incomplete_uploads(f"{name}-bucket-{role}-lifecycle", args.account_id, bucket, child)
            self.worker_buckets[local_name] = bucket
        self.register_outputs(
            {
                "d1_database_id": self.database.uuid,
                "d1_migrations_sha256": self.schema.migrations_sha256,
                "kv_namespace_id": self.kv_namespace.id,
                "models_bucket_name": self.models_bucket.name,
                "worker_bucket_names": {local: b.name for local, b in self.worker_buckets.items()},
            }
        )


def abort_incomplete_uploads(
    name: str, account_id: str, bucket: cf.R2Bucket, opts: pulumi.ResourceOptions
) -> cf.R2BucketLifecycle:
    return cf.R2BucketLifecycle(
        name,
        account_id=account_id,
        bucket_name=bucket.name,
        rules=[
            {
                "id": "abort-incomplete-multipart-uploads",
                "enabled": True,
                "conditions": {"prefix": ""},
                "abort_multipart_uploads_transition": {
                    "condition": {"type": "Age", "max_age": ABORT_INCOMPLETE_UPLOADS_AFTER_SECONDS},
                },
            }
        ],
        opts=opts,
    )
