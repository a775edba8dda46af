"""Zero Trust Access: no application without a policy, and no tunnel hostname outside an application."""

from __future__ import annotations

from fnmatch import fnmatchcase

from pulumi_policy import (
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from infra.policy.model import ACCESS_APPLICATION, TUNNEL_CONFIG, items, mapping, of_type

# A path-scoped application (host/path) leaves the rest of the host open; these paths cover all of it.
WHOLE_HOST_PATHS = ("", "/", "*", "/*")


def validate_application(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != ACCESS_APPLICATION:
        return
    if not items(args.props.get("policies")):
        report_violation(
            f"Access application '{args.name}' has no policy; attach at least one "
            "(ZeroTrustAccessPolicy referenced by id and precedence)",
            None,
        )


access_applications_have_policies = ResourceValidationPolicy(
    name="access-applications-have-policies",
    description="Every Zero Trust Access application has at least one policy.",
    validate=validate_application,
)


def application_domains(app_props) -> list[str]:
    """The domains an application protects, from `domain`, `selfHostedDomains` and public `destinations`."""
    domains = [app_props.get("domain"), *items(app_props.get("selfHostedDomains"))]
    for destination in items(app_props.get("destinations")):
        destination = mapping(destination)
        if destination.get("type", "public") == "public":
            domains.append(destination.get("uri"))
    return [d for d in domains if isinstance(d, str) and d]


def covers(domain: str, hostname: str) -> bool:
    host, _, path = domain.removeprefix("https://").partition("/")
    return ("/" + path if path else "") in WHOLE_HOST_PATHS and fnmatchcase(hostname, host.lower())


def tunnel_hostnames(config_props) -> list[str]:
    config = mapping(config_props.get("config"))
    rules = items(config.get("ingresses")) or items(config.get("ingressRules"))
    return [h for h in (mapping(rule).get("hostname") for rule in rules) if isinstance(h, str) and h]


def validate_origin(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    domains = [
        d for app in of_type(args.resources, ACCESS_APPLICATION) for d in application_domains(app.props)
    ]
    for tunnel_config in of_type(args.resources, TUNNEL_CONFIG):
        for hostname in tunnel_hostnames(tunnel_config.props):
            if not any(covers(domain, hostname.lower()) for domain in domains):
                report_violation(
                    f"tunnel hostname {hostname} (from '{tunnel_config.name}') is not behind any "
                    "Zero Trust Access application",
                    tunnel_config.urn,
                )


origin_behind_access = StackValidationPolicy(
    name="origin-behind-access",
    description="Every hostname the Cloudflare Tunnel publishes is covered by an Access application.",
    validate=validate_origin,
)
