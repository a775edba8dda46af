"""S3 buckets (the Logpush audit bucket) are encrypted at rest and closed to the public."""

from __future__ import annotations

import json

from pulumi_policy import PolicyResource, ReportViolation, StackValidationArgs, StackValidationPolicy

from infra.policy.model import (
    S3_ACLS,
    S3_BUCKET_POLICY,
    S3_BUCKETS,
    S3_ENCRYPTION,
    S3_PUBLIC_ACCESS_BLOCK,
    flag,
    items,
    mapping,
    of_type,
)

PUBLIC_ACLS = ("public-read", "public-read-write", "authenticated-read")
PUBLIC_ACCESS_BLOCK_FLAGS = (
    "blockPublicAcls",
    "blockPublicPolicy",
    "ignorePublicAcls",
    "restrictPublicBuckets",
)
ENCRYPTION_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")


def attached_to(bucket: PolicyResource, resources: list[PolicyResource], *types: str) -> list[PolicyResource]:
    """Resources of `types` whose `bucket` input is this bucket: by property dependency (known in a
    preview) or, failing that, by the bucket's name."""
    names = {bucket.props.get("bucket"), bucket.props.get("id")} - {None}
    return [
        r
        for r in of_type(resources, *types)
        if bucket in r.property_dependencies.get("bucket", []) or r.props.get("bucket") in names
    ]


def encryption_rules(config: object) -> list:
    """`rules` of a BucketServerSideEncryptionConfiguration, or `rule` of a bucket's inline block."""
    config = mapping(config)
    return items(config.get("rules")) + ([config["rule"]] if "rule" in config else [])


def is_encrypted(bucket: PolicyResource, resources: list[PolicyResource]) -> bool:
    configs = [c.props for c in attached_to(bucket, resources, *S3_ENCRYPTION)]
    configs.append(bucket.props.get("serverSideEncryptionConfiguration"))
    return any(
        mapping(mapping(rule).get("applyServerSideEncryptionByDefault")).get("sseAlgorithm")
        in ENCRYPTION_ALGORITHMS
        for config in configs
        for rule in encryption_rules(config)
    )


def allows_anyone(principal: object) -> bool:
    aws = mapping(principal).get("AWS")
    return principal == "*" or aws == "*" or (isinstance(aws, list) and "*" in aws)


def public_policy_statements(policy_document: object) -> list[str]:
    """Sids (or indexes) of Allow statements open to any principal without a condition."""
    try:
        document = mapping(
            json.loads(policy_document) if isinstance(policy_document, str) else policy_document
        )
    except json.JSONDecodeError:
        return []
    statements = document.get("Statement", [])
    open_statements = []
    for index, statement in enumerate(statements if isinstance(statements, list) else [statements]):
        statement = mapping(statement)
        if (
            statement.get("Effect") == "Allow"
            and allows_anyone(statement.get("Principal"))
            and not statement.get("Condition")
        ):
            open_statements.append(str(statement.get("Sid", index)))
    return open_statements


def privacy_problems(bucket: PolicyResource, resources: list[PolicyResource]) -> list[str]:
    problems = []
    blocks = attached_to(bucket, resources, S3_PUBLIC_ACCESS_BLOCK)
    if not any(all(flag(block.props, f) for f in PUBLIC_ACCESS_BLOCK_FLAGS) for block in blocks):
        problems.append(
            "has no public access block with " + ", ".join(PUBLIC_ACCESS_BLOCK_FLAGS) + " all true"
        )
    acls = [bucket.props.get("acl")] + [
        acl.props.get("acl") for acl in attached_to(bucket, resources, *S3_ACLS)
    ]
    problems += [f"has the public ACL {acl}" for acl in acls if acl in PUBLIC_ACLS]
    for policy in attached_to(bucket, resources, S3_BUCKET_POLICY):
        for sid in public_policy_statements(policy.props.get("policy")):
            problems.append(f"has a bucket policy statement {sid} that allows any principal")
    return problems


def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    for bucket in of_type(args.resources, *S3_BUCKETS):
        problems = privacy_problems(bucket, args.resources)
        if not is_encrypted(bucket, args.resources):
            problems.insert(0, "has no server-side encryption (AES256 or aws:kms)")
        for problem in problems:
            report_violation(f"S3 bucket '{bucket.name}' {problem}", bucket.urn)


s3_buckets_encrypted_and_private = StackValidationPolicy(
    name="s3-buckets-encrypted-and-private",
    description="S3 buckets (the audit log bucket) have server-side encryption and block all public access.",
    validate=validate,
)
