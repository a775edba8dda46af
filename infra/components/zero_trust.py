"""Zero Trust in front of the GPU origin and around the data:

- an Access service token the Worker presents (CF-Access-Client-Id/Secret) to reach the origin;
- a self-hosted Access application on the origin hostname with two policies: the service token
  (`non_identity`, precedence 1) and people from the configured email domains / groups (`allow`,
  precedence 2), who must also pass a WARP device-posture check when the stack requires it (prod);
- a DLP custom profile whose entries come from `dlp-patterns.json`, the same patterns the Worker
  enforces, and a Gateway HTTP policy that blocks traffic to our hostnames matching it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cf

from infra.config.cloudflare import AccessSettings
from infra.dlp_patterns import DlpPattern

SERVICE_POLICY_PRECEDENCE = 1
PEOPLE_POLICY_PRECEDENCE = 2
POSTURE_PLATFORMS = ("windows", "mac", "linux", "ios", "android")


def gateway_dlp_traffic(profile_id: str, hostnames: tuple[str, ...]) -> str:
    """Gateway wirefilter: an HTTP request to one of our hostnames whose body matches the profile."""
    hosts = " ".join(f'"{host}"' for host in hostnames)
    return f'any(dlp.profiles[*] in {{"{profile_id}"}}) and http.request.host in {{{hosts}}}'


@dataclass(frozen=True)
class ZeroTrustArgs:
    account_id: str
    resource_prefix: str
    api_hostname: str
    origin_hostname: str
    access: AccessSettings
    dlp_patterns: tuple[DlpPattern, ...]


class ZeroTrust(pulumi.ComponentResource):
    def __init__(self, name: str, args: ZeroTrustArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("steadytext:cloudflare:ZeroTrust", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = args.account_id
        prefix = args.resource_prefix

        self.service_token = cf.ZeroTrustAccessServiceToken(
            f"{name}-worker-token",
            account_id=account,
            name=f"{prefix}-worker",
            duration=args.access.service_token_duration,
            opts=child,
        )
        self.service_policy = cf.ZeroTrustAccessPolicy(
            f"{name}-worker-policy",
            account_id=account,
            name=f"{prefix}-worker-service-token",
            decision="non_identity",
            includes=[{"service_token": {"token_id": self.service_token.id}}],
            opts=child,
        )

        self.posture_rule = (
            cf.ZeroTrustDevicePostureRule(
                f"{name}-warp-posture",
                account_id=account,
                name=f"{prefix}-warp-running",
                type="warp",
                description="The device runs the Cloudflare WARP client.",
                matches=[{"platform": platform} for platform in POSTURE_PLATFORMS],
                opts=child,
            )
            if args.access.require_device_posture
            else None
        )
        people = [{"email_domain": {"domain": domain}} for domain in args.access.email_domains] + [
            {"group": {"id": group}} for group in args.access.group_ids
        ]
        self.people_policy = cf.ZeroTrustAccessPolicy(
            f"{name}-people-policy",
            account_id=account,
            name=f"{prefix}-operators",
            decision="allow",
            includes=people,
            requires=[{"device_posture": {"integration_uid": self.posture_rule.id}}]
            if self.posture_rule
            else None,
            opts=child,
        )

        self.application = cf.ZeroTrustAccessApplication(
            f"{name}-origin-app",
            account_id=account,
            name=f"{prefix}-gpu-origin",
            type="self_hosted",
            domain=args.origin_hostname,
            session_duration=args.access.session_duration,
            app_launcher_visible=False,
            # Machine callers get a 401, not a login page, when their token is wrong.
            service_auth401_redirect=True,
            policies=[
                {"id": self.service_policy.id, "precedence": SERVICE_POLICY_PRECEDENCE},
                {"id": self.people_policy.id, "precedence": PEOPLE_POLICY_PRECEDENCE},
            ],
            opts=child,
        )

        self.dlp_profile = cf.ZeroTrustDlpCustomProfile(
            f"{name}-dlp-profile",
            account_id=account,
            name=f"{prefix}-prompt-dlp",
            description="Patterns the steadytext Worker blocks or redacts (dlp-patterns.json).",
            opts=child,
        )
        self.dlp_entries = [
            cf.ZeroTrustDlpCustomEntry(
                f"{name}-dlp-{pattern.id}",
                account_id=account,
                profile_id=self.dlp_profile.id,
                name=pattern.name,
                enabled=True,
                pattern={"regex": pattern.regex, "validation": pattern.validation},
                opts=child,
            )
            for pattern in args.dlp_patterns
        ]
        hostnames = (args.api_hostname, args.origin_hostname)
        self.gateway_policy = cf.ZeroTrustGatewayPolicy(
            f"{name}-dlp-gateway",
            account_id=account,
            name=f"{prefix}-block-dlp-matches",
            action="block",
            enabled=True,
            filters=["http"],
            traffic=self.dlp_profile.id.apply(lambda profile_id: gateway_dlp_traffic(profile_id, hostnames)),
            description="Blocks requests to the inference hostnames that match the DLP profile.",
            opts=child,
        )
        self.register_outputs(
            {
                "access_application_aud": self.application.aud,
                "service_token_client_id": self.service_token.client_id,
                "dlp_profile_id": self.dlp_profile.id,
            }
        )
