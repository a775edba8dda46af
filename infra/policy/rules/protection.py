"""Stateful resources (cache, API keys, model artifacts, batch files and lines in flight, audit logs)
cannot be deleted by a careless `up`."""

from __future__ import annotations

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
)

from infra.policy.model import D1_DATABASE, KV_NAMESPACE, QUEUE, R2_BUCKET, S3_BUCKETS, WORKFLOW

STATEFUL = {
    D1_DATABASE: "D1 database",
    KV_NAMESPACE: "KV namespace",
    R2_BUCKET: "R2 bucket",
    # Messages not yet consumed (batch lines, dead letters) and running instances (batches in progress).
    QUEUE: "Queue",
    WORKFLOW: "Workflow",
    **{token: "S3 bucket" for token in S3_BUCKETS},
}

# dev stacks are torn down on purpose; the per-stack policy config turns the requirement off there.
REQUIRE_PROTECTION_DEFAULT = True


def validate(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    kind = STATEFUL.get(args.resource_type)
    if kind is None or not args.get_config().get("requireProtection", REQUIRE_PROTECTION_DEFAULT):
        return
    if not args.opts.protect:
        report_violation(
            f"{kind} '{args.name}' holds state and must be declared with protect=True in this stack", None
        )


stateful_resources_protected = ResourceValidationPolicy(
    name="stateful-resources-protected",
    description="D1, KV, R2, Queues, Workflows and S3 buckets are protected (protect=True) where required "
    "(prod).",
    config_schema=PolicyConfigSchema(
        properties={"requireProtection": {"type": "boolean", "default": REQUIRE_PROTECTION_DEFAULT}}
    ),
    validate=validate,
)
