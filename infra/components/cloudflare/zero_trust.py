"""Zero Trust in front of the GPU origin and around the data:

- an Access service token the Worker presents (CF-Access-Client-Id/Secret) to reach the origin, whose
  secret rotates when `serviceTokenSecretVersion` goes up (the previous one stays valid for a day);
- a self-hosted Access application on the origin hostname with two policies: the service token
  (`non_identity`, precedence 1) and people from the configured email domains / groups (`allow`,
  precedence 2), who must also pass a WARP device-posture check when the stack requires it (prod);
- the DLP profile(s) of `dlpProfile` (gateway_dlp.py) and a Gateway HTTP policy that blocks traffic to
  our hostnames matching them; Gateway only sees HTTPS bodies with TLS decryption on, so the stack turns
  it on unless `gatewayTlsDecryption` says the account manages it elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cf

from infra.components.cloudflare.gateway_dlp import (
    PREDEFINED_PROFILES,
    gateway_dlp_traffic,
    predefined_entry_ids,
)
from infra.components.cloudflare.rotation_window import RotationWindow
from infra.config.cloudflare import (
    DLP_PROFILE_CUSTOM,
    TLS_DECRYPTION_DECLARE,
    AccessSettings,
    GatewaySettings,
)
from infra.dlp_patterns import DlpPattern

SERVICE_POLICY_PRECEDENCE = 1
PEOPLE_POLICY_PRECEDENCE = 2
POSTURE_PLATFORMS = ("windows", "mac", "linux", "ios", "android")
PROFILE_DESCRIPTION = (
    "The steadytext Worker's DLP classes (dlp-patterns.json) as far as Zero Trust regexes can express "
    "them; what they miss (split numbers, Unicode card digits, ...) is listed in docs/dlp.md."
)
# How long the Worker's previous service-token secret stays valid after a rotation: the new one reaches
# the Worker seconds later in the same `pulumi up`; the rest is room to re-run a failed update.
PREVIOUS_SECRET_GRACE_SECONDS = 24 * 3600


@dataclass(frozen=True)
class ZeroTrustArgs:
    account_id: str
    resource_prefix: str
    api_hostname: str
    origin_hostname: str
    access: AccessSettings
    gateway: GatewaySettings
    dlp_patterns: tuple[DlpPattern, ...]


class ZeroTrust(pulumi.ComponentResource):
    def __init__(self, name: str, args: ZeroTrustArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("steadytext:cloudflare:ZeroTrust", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        account = args.account_id
        prefix = args.resource_prefix

        self.service_token = self._service_token(name, args)
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

        self.tls_decryption = (
            # An account-wide singleton: the provider PUTs the whole Gateway configuration, and its delete
            # leaves the account as it is.
            cf.ZeroTrustGatewaySettings(
                f"{name}-gateway-tls-decryption",
                account_id=account,
                settings={"tls_decrypt": {"enabled": True}},
                opts=child,
            )
            if args.gateway.tls_decryption == TLS_DECRYPTION_DECLARE
            else None
        )
        self.dlp_profile_ids = (
            self._custom_dlp_profile(name, args)
            if args.gateway.dlp_profile == DLP_PROFILE_CUSTOM
            else self._predefined_dlp_profiles(name, args)
        )
        hostnames = (args.api_hostname, args.origin_hostname)
        self.gateway_policy = cf.ZeroTrustGatewayPolicy(
            f"{name}-dlp-gateway",
            account_id=account,
            name=f"{prefix}-block-dlp-matches",
            action="block",
            enabled=True,
            filters=["http"],
            traffic=self.dlp_profile_ids.apply(lambda ids: gateway_dlp_traffic(ids, hostnames)),
            description="Blocks requests to the inference hostnames that match the DLP profile.",
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.tls_decryption] if self.tls_decryption else []
            ),
        )
        self.register_outputs(
            {
                "access_application_aud": self.application.aud,
                "service_token_client_id": self.service_token.client_id,
                "service_token_expires_at": self.service_token.expires_at,
                "dlp_profile_ids": self.dlp_profile_ids,
            }
        )

    def _service_token(self, name: str, args: ZeroTrustArgs) -> cf.ZeroTrustAccessServiceToken:
        version = args.access.service_token_secret_version
        # The provider requires `client_secret_version` and `previous_client_secret_expires_at` together;
        # version 1 is its default, so a token never rotated sends neither.
        window = (
            RotationWindow(
                f"{name}-worker-token-rotation",
                version=version,
                grace_seconds=PREVIOUS_SECRET_GRACE_SECONDS,
                opts=pulumi.ResourceOptions(parent=self),
            )
            if version > 1
            else None
        )
        return cf.ZeroTrustAccessServiceToken(
            f"{name}-worker-token",
            account_id=args.account_id,
            name=f"{args.resource_prefix}-worker",
            duration=args.access.service_token_duration,
            client_secret_version=version if window else None,
            previous_client_secret_expires_at=window.previous_secret_expires_at if window else None,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _custom_dlp_profile(self, name: str, args: ZeroTrustArgs) -> pulumi.Output[list[str]]:
        child = pulumi.ResourceOptions(parent=self)
        profile = cf.ZeroTrustDlpCustomProfile(
            f"{name}-dlp-profile",
            account_id=args.account_id,
            name=f"{args.resource_prefix}-prompt-dlp",
            description=PROFILE_DESCRIPTION,
            opts=child,
        )
        for pattern in args.dlp_patterns:
            cf.ZeroTrustDlpCustomEntry(
                f"{name}-dlp-{pattern.id}",
                account_id=args.account_id,
                profile_id=profile.id,
                name=pattern.name,
                enabled=True,
                # No `validation` ("luhn"): provider v5 deprecates the field; the Worker checks Luhn itself.
                pattern={"regex": pattern.regex},
                opts=child,
            )
        return profile.id.apply(lambda profile_id: [profile_id])

    def _predefined_dlp_profiles(self, name: str, args: ZeroTrustArgs) -> pulumi.Output[list[str]]:
        lookup = pulumi.InvokeOutputOptions(parent=self)
        # Every predefined entry of the account, with its profile (the profile lookup's own entry list is
        # deprecated in provider v5).
        entries = cf.get_zero_trust_dlp_predefined_entries_output(account_id=args.account_id, opts=lookup)
        profile_ids = []
        for profile in PREDEFINED_PROFILES:
            found = cf.get_zero_trust_dlp_predefined_profile_output(
                account_id=args.account_id, profile_id=profile.id, opts=lookup
            )
            configured = cf.ZeroTrustDlpPredefinedProfile(
                f"{name}-dlp-{profile.id[:8]}",
                account_id=args.account_id,
                profile_id=profile.id,
                enabled_entries=pulumi.Output.all(found.name, entries.results).apply(
                    lambda values, profile=profile: predefined_entry_ids(profile, values[0], values[1])
                ),
                # The profile belongs to the account, and every stack in it may use it: destroying one
                # stack must not turn its entries off under another.
                opts=pulumi.ResourceOptions(parent=self, retain_on_delete=True),
            )
            profile_ids.append(configured.profile_id)
        return pulumi.Output.all(*profile_ids).apply(list)
