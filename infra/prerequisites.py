"""What a Cloudflare account and API token must offer before `pulumi up` can succeed: the one home of
these facts. docs/infra.md's list is generated from here (`python -m infra.prerequisites --write`) and a
test keeps the two equal; another test checks every Cloudflare resource type and data source the program
uses against these permissions and the SDK's own "Accepted Permissions". The preflight imports this
module to check a real account.

A permission is named as the API names its permission group (`Workers Scripts Write`, what a token's
policies list); the dashboard's token form shows the same group as `Workers Scripts` with `Edit`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra import REPO_ROOT
from infra.config.cloudflare import (
    DLP_PROFILE_CUSTOM,
    TLS_DECRYPTION_DECLARE,
    TLS_DECRYPTION_EXTERNAL,
    CloudflareConfig,
)

ACCOUNT = "account"
ZONE = "zone"
CF = "cloudflare:index"


@dataclass(frozen=True)
class Condition:
    """A config choice that makes an item necessary (`dlpProfile` = `custom`)."""

    key: str
    value: str
    holds: Callable[[CloudflareConfig], bool]

    def __str__(self) -> str:
        return f"`{self.key}: {self.value}`"


WHEN_CUSTOM_DLP = Condition(
    "dlpProfile", DLP_PROFILE_CUSTOM, lambda cf: cf.gateway.dlp_profile == DLP_PROFILE_CUSTOM
)
WHEN_TLS_DECLARED = Condition(
    "gatewayTlsDecryption",
    TLS_DECRYPTION_DECLARE,
    lambda cf: cf.gateway.tls_decryption == TLS_DECRYPTION_DECLARE,
)
WHEN_TLS_EXTERNAL = Condition(
    "gatewayTlsDecryption",
    TLS_DECRYPTION_EXTERNAL,
    lambda cf: cf.gateway.tls_decryption == TLS_DECRYPTION_EXTERNAL,
)


@dataclass(frozen=True)
class TokenPermission:
    group: str  # the permission group ("Workers Scripts", "Zero Trust: PII")
    level: str  # "Edit" or "Read", as the dashboard offers it
    scope: str  # ACCOUNT or ZONE
    why: str
    # The Pulumi type tokens (resources and data sources) whose calls need it.
    used_by: tuple[str, ...]

    @property
    def api_name(self) -> str:
        """The name the API gives the permission group, and pulumi-cloudflare's docstrings use."""
        return f"{self.group} {'Write' if self.level == 'Edit' else 'Read'}"


TOKEN_PERMISSIONS: tuple[TokenPermission, ...] = (
    TokenPermission(
        "Workers Scripts",
        "Edit",
        ACCOUNT,
        "upload the Worker, its custom domain, cron trigger, workers.dev setting and Workflows; read the "
        "live script's Durable Object migration tag",
        (
            f"{CF}/workersScript:WorkersScript",
            f"{CF}/workflow:Workflow",
            f"{CF}/workersCustomDomain:WorkersCustomDomain",
            f"{CF}/workersCronTrigger:WorkersCronTrigger",
            f"{CF}/workersScriptSubdomain:WorkersScriptSubdomain",
            f"{CF}/getWorkersScripts:getWorkersScripts",
        ),
    ),
    TokenPermission(
        "Workers KV Storage",
        "Edit",
        ACCOUNT,
        "the KV cache namespace",
        (f"{CF}/workersKvNamespace:WorkersKvNamespace",),
    ),
    TokenPermission(
        "D1",
        "Edit",
        ACCOUNT,
        "the D1 database, and applying schema.sql through the D1 query API (D1Schema)",
        (f"{CF}/d1Database:D1Database",),
    ),
    TokenPermission(
        "Workers R2 Storage",
        "Edit",
        ACCOUNT,
        "the models and batch buckets, their lifecycle rules and the batch inbox's event notification",
        (
            f"{CF}/r2Bucket:R2Bucket",
            f"{CF}/r2BucketLifecycle:R2BucketLifecycle",
            f"{CF}/r2BucketEventNotification:R2BucketEventNotification",
        ),
    ),
    TokenPermission(
        "Queues",
        "Edit",
        ACCOUNT,
        "the batch pipeline's queues (lines, inbox, dead letters) and the Worker's consumers",
        (f"{CF}/queue:Queue", f"{CF}/queueConsumer:QueueConsumer"),
    ),
    TokenPermission(
        "Access: Apps and Policies",
        "Edit",
        ACCOUNT,
        "the Access application on the origin hostname and its two policies",
        (
            f"{CF}/zeroTrustAccessApplication:ZeroTrustAccessApplication",
            f"{CF}/zeroTrustAccessPolicy:ZeroTrustAccessPolicy",
        ),
    ),
    TokenPermission(
        "Access: Service Tokens",
        "Edit",
        ACCOUNT,
        "the Worker's service token, and rotating its secret",
        (f"{CF}/zeroTrustAccessServiceToken:ZeroTrustAccessServiceToken",),
    ),
    TokenPermission(
        "Zero Trust",
        "Edit",
        ACCOUNT,
        "the device posture rule, DLP profile(s), the Gateway policy and Gateway TLS decryption",
        (
            f"{CF}/zeroTrustDevicePostureRule:ZeroTrustDevicePostureRule",
            f"{CF}/zeroTrustDlpCustomProfile:ZeroTrustDlpCustomProfile",
            f"{CF}/zeroTrustDlpCustomEntry:ZeroTrustDlpCustomEntry",
            f"{CF}/zeroTrustDlpPredefinedProfile:ZeroTrustDlpPredefinedProfile",
            f"{CF}/getZeroTrustDlpPredefinedProfile:getZeroTrustDlpPredefinedProfile",
            f"{CF}/getZeroTrustDlpPredefinedEntries:getZeroTrustDlpPredefinedEntries",
            f"{CF}/zeroTrustGatewayPolicy:ZeroTrustGatewayPolicy",
            f"{CF}/zeroTrustGatewaySettings:ZeroTrustGatewaySettings",
        ),
    ),
    TokenPermission(
        "Cloudflare Tunnel",
        "Edit",
        ACCOUNT,
        "the tunnel and its ingress; Edit, not Read: the connector-token data source needs it",
        (
            f"{CF}/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared",
            f"{CF}/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig",
            f"{CF}/getZeroTrustTunnelCloudflaredToken:getZeroTrustTunnelCloudflaredToken",
        ),
    ),
    TokenPermission(
        "Logs",
        "Edit",
        ACCOUNT,
        "the Logpush ownership challenges and jobs",
        (
            f"{CF}/logpushOwnershipChallenge:LogpushOwnershipChallenge",
            f"{CF}/logpushJob:LogpushJob",
        ),
    ),
    TokenPermission(
        "Zero Trust: PII",
        "Read",
        ACCOUNT,
        "Logpush jobs on Zero Trust datasets (access_requests, gateway_http) need it besides Logs Edit "
        "(Cloudflare changelog, 2025-11-05)",
        (f"{CF}/logpushJob:LogpushJob",),
    ),
    TokenPermission("DNS", "Edit", ZONE, "the tunnel hostname's CNAME", (f"{CF}/dnsRecord:DnsRecord",)),
    TokenPermission(
        "Workers Routes",
        "Edit",
        ZONE,
        "attaching the Worker to the API hostname of the zone (custom domain)",
        (f"{CF}/workersCustomDomain:WorkersCustomDomain",),
    ),
)

# Logpush datasets for which Cloudflare also requires "Zero Trust: PII Read".
ZERO_TRUST_DATASETS = ("access_requests", "gateway_http")


@dataclass(frozen=True)
class AccountPrerequisite:
    name: str
    why: str
    needed_when: Condition | None = None

    def applies(self, cf: CloudflareConfig) -> bool:
        return self.needed_when is None or self.needed_when.holds(cf)


ACCOUNT_PREREQUISITES: tuple[AccountPrerequisite, ...] = (
    AccountPrerequisite(
        "A zone on the account (`zoneId`)",
        "holds `apiHostname` (the Worker's custom domain) and `originHostname` (the tunnel's CNAME)",
    ),
    AccountPrerequisite(
        "Workers Paid plan",
        "Workers Trace Events Logpush (`logpush: true` on the Worker and its Logpush job)",
    ),
    AccountPrerequisite(
        "A Zero Trust organization (`accessTeamName`), any Zero Trust plan",
        "Access application and service token, Cloudflare Tunnel, Gateway policy, device posture",
    ),
    AccountPrerequisite(
        "The DLP add-on (Zero Trust Enterprise)",
        "custom DLP profiles; Free and Pay-as-you-go plans get only the predefined Financial Information "
        "and Social Security profiles: choose `dlpProfile: predefined` there",
        WHEN_CUSTOM_DLP,
    ),
    AccountPrerequisite(
        "Gateway TLS decryption turned on by whoever manages the account's Gateway settings",
        "without it Gateway cannot see HTTPS request bodies and the DLP block policy never matches",
        WHEN_TLS_EXTERNAL,
    ),
    AccountPrerequisite(
        "No other owner of the account's Gateway settings",
        "the stack declares them to turn TLS decryption on, and the provider writes the whole Gateway "
        "configuration: settings managed elsewhere would be reset (then choose "
        "`gatewayTlsDecryption: external`)",
        WHEN_TLS_DECLARED,
    ),
    AccountPrerequisite(
        "An R2 API token (S3 key pair `r2AccessKeyId` / `r2SecretAccessKey`) with Object Read & Write",
        "the model upload during `pulumi up` and the GPU hosts' download",
    ),
)


def prerequisites_for(cf: CloudflareConfig) -> tuple[AccountPrerequisite, ...]:
    """The account prerequisites that apply to a stack with this config."""
    return tuple(item for item in ACCOUNT_PREREQUISITES if item.applies(cf))


BEGIN_MARKER = "<!-- prerequisites:begin (generated by `python -m infra.prerequisites --write`) -->"
END_MARKER = "<!-- prerequisites:end -->"
DOCS_FILE = REPO_ROOT / "docs" / "infra.md"


def render_markdown() -> str:
    """The docs block: the token's permissions, then the account's prerequisites."""
    lines = [
        "| scope | permission (dashboard: group → level) | API name | why |",
        "|---|---|---|---|",
    ]
    lines += [f"| {p.scope} | {p.group} → {p.level} | `{p.api_name}` | {p.why} |" for p in TOKEN_PERMISSIONS]
    lines += ["", "| account prerequisite | needed when | why |", "|---|---|---|"]
    lines += [
        f"| {item.name} | {item.needed_when or 'always'} | {item.why} |" for item in ACCOUNT_PREREQUISITES
    ]
    return "\n".join(lines)


def docs_block(text: str) -> str:
    """What sits between the markers in `text` ("" when the markers are missing)."""
    if BEGIN_MARKER not in text or END_MARKER not in text:
        return ""
    return text.split(BEGIN_MARKER, 1)[1].split(END_MARKER, 1)[0].strip("\n")


def write_docs(path: Path = DOCS_FILE) -> None:
    text = path.read_text()
    before, rest = text.split(BEGIN_MARKER, 1)
    after = rest.split(END_MARKER, 1)[1]
    path.write_text(f"{before}{BEGIN_MARKER}\n{render_markdown()}\n{END_MARKER}{after}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.prerequisites",
        description="The Cloudflare API token's permissions and the account's prerequisites, as Markdown.",
    )
    parser.add_argument(
        "--write", action="store_true", help=f"update the generated block in docs/{DOCS_FILE.name}"
    )
    args = parser.parse_args(argv)
    if args.write:
        write_docs()
    else:
        sys.stdout.write(render_markdown() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
