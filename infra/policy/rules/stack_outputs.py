"""No secret value leaves the stack as a plain output (outputs are readable by anyone with stack access)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policy.model import STACK, WORKERS_SCRIPT, items, mapping, of_type, unwrap

# Where provider resources hold secret material (input or output property), besides secret_text bindings.
SECRET_PROPERTIES = {
    "cloudflare:index/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken": ("clientSecret",),
    "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared": ("tunnelSecret",),
    "aws:secretsmanager/secretVersion:SecretVersion": ("secretString",),
    "aws:iam/accessKey:AccessKey": ("secret",),
    "random:index/randomPassword:RandomPassword": ("result",),
    "tls:index/privateKey:PrivateKey": ("privateKeyPem", "privateKeyPemPkcs8", "privateKeyOpenssh"),
}
SSM_PARAMETER = "aws:ssm/parameter:Parameter"  # its `value` is secret when type is SecureString
# Shorter strings (ids, flags) match too much to be evidence of a leak.
MIN_SECRET_LENGTH = 8


def walk(value: Any) -> Iterator[Any]:
    """Every leaf of a property value; a `Secret` is a leaf (it is already protected)."""
    if isinstance(value, Mapping):
        for child in value.values():
            yield from walk(child)
    elif isinstance(value, Sequence) and not isinstance(value, str | bytes):
        for child in value:
            yield from walk(child)
    else:
        yield value


def secret_values(resources: list[PolicyResource]) -> set[str]:
    candidates = []
    for resource in resources:
        candidates += [leaf.value for leaf in walk(resource.props) if isinstance(leaf, Secret)]
        candidates += [resource.props.get(prop) for prop in SECRET_PROPERTIES.get(resource.resource_type, ())]
        if resource.resource_type == WORKERS_SCRIPT:
            candidates += [
                mapping(b).get("text")
                for b in items(resource.props.get("bindings"))
                if mapping(b).get("type") == "secret_text"
            ]
        if resource.resource_type == SSM_PARAMETER and resource.props.get("type") == "SecureString":
            candidates.append(resource.props.get("value"))
    return {
        unwrap(c) for c in candidates if isinstance(unwrap(c), str) and len(unwrap(c)) >= MIN_SECRET_LENGTH
    }


def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    if not args.get_config().get("secretsVisible", False):
        # Under the Pulumi engine the pack receives secret values unwrapped: a secret output cannot be told
        # from a plain one there, so only callers that keep the markers (the offline plan) can check.
        return
    secrets = secret_values(args.resources)
    for stack in of_type(args.resources, STACK):
        for name in sorted(stack.props):
            if any(
                isinstance(leaf, str) and any(secret in leaf for secret in secrets)
                for leaf in walk(stack.props[name])
            ):
                report_violation(
                    f"stack output '{name}' contains a secret value in plain text; export it with "
                    "pulumi.Output.secret(...) or not at all",
                    stack.urn,
                )


no_secret_in_plain_outputs = StackValidationPolicy(
    name="no-secret-in-plain-outputs",
    description="No stack output carries a secret value (config secret, token, password) in plain text.",
    config_schema=PolicyConfigSchema(properties={"secretsVisible": {"type": "boolean", "default": False}}),
    validate=validate,
)
