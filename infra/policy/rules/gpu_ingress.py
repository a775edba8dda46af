"""The GPU hosts accept no inbound connections: cloudflared dials out to Cloudflare, so nothing needs in."""

from __future__ import annotations

from pulumi_policy import ReportViolation, StackValidationArgs, StackValidationPolicy

from infra.policy.model import (
    EC2_INSTANCE,
    INGRESS_RULE,
    LAUNCH_TEMPLATE,
    SECURITY_GROUP,
    SECURITY_GROUP_RULE,
    dependencies_of,
    is_gpu_instance_type,
    items,
    of_type,
)

# Where a launch template or an instance names its security groups.
SECURITY_GROUP_PROPERTIES = ("vpcSecurityGroupIds", "securityGroups", "networkInterfaces")


def gpu_security_groups(args: StackValidationArgs) -> dict[str, object]:
    """URN → security group of every GPU launch template or instance (linked through property
    dependencies, which a preview knows even while the group's id is still unknown)."""
    groups = {}
    for host in of_type(args.resources, LAUNCH_TEMPLATE, EC2_INSTANCE):
        if not is_gpu_instance_type(host.props.get("instanceType")):
            continue
        for group in dependencies_of(host, *SECURITY_GROUP_PROPERTIES):
            if group.resource_type == SECURITY_GROUP:
                groups[group.urn] = group
    return groups


def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    groups = gpu_security_groups(args)
    for group in groups.values():
        rules = items(group.props.get("ingress"))
        if rules:
            report_violation(
                f"security group '{group.name}' of the GPU instances has {len(rules)} inbound rule(s); "
                "the GPU hosts are reached only through the Cloudflare Tunnel, which connects outbound",
                group.urn,
            )
    for rule in of_type(args.resources, INGRESS_RULE, SECURITY_GROUP_RULE):
        if rule.resource_type == SECURITY_GROUP_RULE and rule.props.get("type") != "ingress":
            continue
        for group in dependencies_of(rule, "securityGroupId"):
            if group.urn in groups:
                report_violation(
                    f"'{rule.name}' adds an inbound rule to '{group.name}', "
                    "the GPU instances' security group",
                    rule.urn,
                )


gpu_hosts_no_inbound = StackValidationPolicy(
    name="gpu-hosts-no-inbound",
    description="Security groups of GPU instances have no inbound rule (the tunnel connects outbound).",
    validate=validate,
)
