"""The Worker's Queues: every queue edge/wrangler.jsonc names (producers, consumers, dead-letter queues),
and the R2 event notifications that feed some of them (the batch inbox).

Queues hold messages not yet processed (batch lines in flight, lines that keep failing in the dead-letter
queue), so with `protect` (prod) each is protected and retained on delete. The consumers are the Worker's
and are declared with it (EdgeWorker), as `wrangler deploy` attaches them after the upload.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_cloudflare as cf

from infra.wrangler_config import deployed_name, resource_role

# wrangler's `object-create` event type (`wrangler r2 bucket notification create --event-types`).
OBJECT_CREATE = ("PutObject", "CompleteMultipartUpload", "CopyObject")


@dataclass(frozen=True)
class BucketNotification:
    """An R2 → Queue event notification. wrangler.jsonc cannot declare these (wrangler sets them with
    `wrangler r2 bucket notification create`), so they are listed here, by the local names of the bucket
    and the queue; each is declared where wrangler.jsonc binds that bucket and consumes that queue."""

    bucket: str
    queue: str
    prefix: str
    suffix: str
    description: str
    actions: tuple[str, ...] = OBJECT_CREATE


BUCKET_NOTIFICATIONS = (
    # A JSONL file written under inbox/ of the batch bucket starts a batch (results go to outbox/).
    BucketNotification(
        bucket="steadytext-batch",
        queue="steadytext-batch-inbox",
        prefix="inbox/",
        suffix=".jsonl",
        description="batch inbox: a JSONL file under inbox/ starts a batch",
    ),
)


def queue_names(wrangler: Mapping[str, Any]) -> list[str]:
    """Every queue wrangler.jsonc names, by local name: produced to, consumed, or a dead-letter queue."""
    queues = wrangler.get("queues", {})
    names = [p["queue"] for p in queues.get("producers", [])]
    for consumer in queues.get("consumers", []):
        names += [consumer["queue"]] + (
            [consumer["dead_letter_queue"]] if "dead_letter_queue" in consumer else []
        )
    return sorted(set(names))


def notifications_for(wrangler: Mapping[str, Any]) -> list[BucketNotification]:
    """The notifications whose bucket wrangler.jsonc binds and whose queue the Worker consumes."""
    buckets = {b["bucket_name"] for b in wrangler.get("r2_buckets", [])}
    consumed = {c["queue"] for c in wrangler.get("queues", {}).get("consumers", [])}
    return [n for n in BUCKET_NOTIFICATIONS if n.bucket in buckets and n.queue in consumed]


@dataclass(frozen=True)
class EdgeQueuesArgs:
    account_id: str
    resource_prefix: str
    protect: bool
    wrangler: Mapping[str, Any]
    # The deployed bucket name of each bucket wrangler.jsonc binds, by local name (EdgeStorage's).
    bucket_names: Mapping[str, pulumi.Input[str]]


class EdgeQueues(pulumi.ComponentResource):
    def __init__(self, name: str, args: EdgeQueuesArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("steadytext:cloudflare:EdgeQueues", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        stateful = pulumi.ResourceOptions(parent=self, protect=args.protect, retain_on_delete=args.protect)

        # By local name (as wrangler.jsonc's producers and consumers refer to them).
        self.queues: dict[str, cf.Queue] = {
            local: cf.Queue(
                f"{name}-{resource_role(local)}",
                account_id=args.account_id,
                queue_name=deployed_name(local, args.resource_prefix),
                opts=stateful,
            )
            for local in queue_names(args.wrangler)
        }
        self.notifications = [
            cf.R2BucketEventNotification(
                f"{name}-{resource_role(n.queue)}-notification",
                account_id=args.account_id,
                bucket_name=args.bucket_names[n.bucket],
                queue_id=self.queues[n.queue].queue_id,
                rules=[
                    {
                        "actions": list(n.actions),
                        "prefix": n.prefix,
                        "suffix": n.suffix,
                        "description": n.description,
                    }
                ],
                opts=child,
            )
            for n in notifications_for(args.wrangler)
        ]
        self.register_outputs({"queue_names": {local: q.queue_name for local, q in self.queues.items()}})
