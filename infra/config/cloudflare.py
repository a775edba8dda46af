"""Stack config for everything declared on Cloudflare (keys in the project namespace, see Pulumi.yaml)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pulumi

from infra.config.reader import HOSTNAME, ConfigError, ConfigReader

RESOURCE_PREFIX = re.compile(r"^[a-z][a-z0-9-]{2,40}[a-z0-9]$")
DURATION = re.compile(r"^[0-9]+(m|h)$")
FINGERPRINT = re.compile(r"^[0-9a-f]{32}$")
TEAM_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class WorkerSettings:
    """Per-stack values of the Worker's plain vars (names fixed in docs/interfaces.md)."""

    dlp_policy: str
    cache_ttl_seconds: int
    cache_max_age_seconds: int
    memory_cache_entries: int
    max_tokens_limit: int
    max_body_bytes: int
    origin_timeout_ms: int
    origin_fallback_url: str
    # "" = the Worker learns the fingerprint from the origin; set it to pin cache keys to one model build.
    model_fingerprint: str


@dataclass(frozen=True)
class AccessSettings:
    """Who may reach the origin hostname besides the Worker's service token."""

    team_name: str
    email_domains: tuple[str, ...]
    group_ids: tuple[str, ...]
    require_device_posture: bool
    session_duration: str
    service_token_duration: str
    # Bumping it rotates the Worker's service-token secret (pulumi-cloudflare's `client_secret_version`).
    service_token_secret_version: int


# gatewayTlsDecryption: this stack turns Gateway TLS decryption on, or the account manages it elsewhere.
TLS_DECRYPTION_DECLARE = "declare"
TLS_DECRYPTION_EXTERNAL = "external"
# dlpProfile: a custom profile from dlp-patterns.json (needs the DLP add-on), or Cloudflare's predefined
# Financial Information + Social Security profiles (every Zero Trust plan).
DLP_PROFILE_CUSTOM = "custom"
DLP_PROFILE_PREDEFINED = "predefined"


@dataclass(frozen=True)
class GatewaySettings:
    """How Gateway's DLP block policy for our hostnames gets what it needs from the account."""

    tls_decryption: str
    dlp_profile: str


@dataclass(frozen=True)
class CloudflareConfig:
    account_id: str
    zone_id: str
    api_hostname: str
    origin_hostname: str
    resource_prefix: str
    origin_port: int
    worker: WorkerSettings
    access: AccessSettings
    gateway: GatewaySettings
    # Bumping it replaces the Worker's receipt-signing key pair (docs/infra.md, "Receipt signing key").
    receipt_key_version: int
    api_token: pulumi.Output[str]
    origin_token: pulumi.Output[str]
    metrics_token: pulumi.Output[str]
    r2_access_key_id: pulumi.Output[str]
    r2_secret_access_key: pulumi.Output[str]

    @property
    def r2_endpoint(self) -> str:
        return f"https://{self.account_id}.r2.cloudflarestorage.com"


def _cache_max_age(read: ConfigReader, ttl_seconds: int) -> int:
    max_age = read.integer("cacheMaxAgeSeconds", example=604800, minimum=60, maximum=31_536_000)
    if max_age < ttl_seconds:
        raise ConfigError(
            read.key("cacheMaxAgeSeconds"),
            f"must be at least {read.key('cacheTtlSeconds')} ({ttl_seconds}), got {max_age}: a hit may "
            "extend an answer's life by the TTL, never past its maximum age",
            str(ttl_seconds),
        )
    return max_age


RETIRED_MIGRATION_TAG = "workerMigrationTag"
# Keys read only to refuse them with the fix (not declared in Pulumi.yaml any more).
RETIRED_KEYS = (RETIRED_MIGRATION_TAG,)


def _worker_settings(read: ConfigReader) -> WorkerSettings:
    # Bumping it by hand after each migration was the old procedure; the tag now comes from Cloudflare.
    read.refuse_retired(
        RETIRED_MIGRATION_TAG,
        "the program reads the deployed Worker's Durable Object migration tag from Cloudflare and uploads "
        "only the migrations after it; remove the key from the stack file",
        f"pulumi config rm {read.key(RETIRED_MIGRATION_TAG)}",
    )
    fallback = read.optional_string(
        "originFallbackUrl",
        example="https://backup-origin.example.com",
        pattern=re.compile(r"^https://[^\s/]+(/\S*)?$"),
        shape="an https:// URL",
    )
    fingerprint = read.optional_string(
        "modelFingerprint",
        example="0123456789abcdef0123456789abcdef",
        pattern=FINGERPRINT,
        shape="the runtime's 32-hex-digit fingerprint",
    )
    cache_ttl_seconds = read.integer("cacheTtlSeconds", example=86400, minimum=60, maximum=31_536_000)
    return WorkerSettings(
        dlp_policy=read.choice("dlpPolicy", ("block", "redact")),
        cache_ttl_seconds=cache_ttl_seconds,
        cache_max_age_seconds=_cache_max_age(read, cache_ttl_seconds),
        memory_cache_entries=read.integer("memoryCacheEntries", example=256, minimum=0, maximum=100_000),
        max_tokens_limit=read.integer("maxTokensLimit", example=512, minimum=1, maximum=32_768),
        max_body_bytes=read.integer("maxBodyBytes", example=65536, minimum=1024, maximum=100_000_000),
        origin_timeout_ms=read.integer("originTimeoutMs", example=60000, minimum=1000, maximum=600_000),
        origin_fallback_url=fallback or "",
        model_fingerprint=fingerprint or "",
    )


def _access_settings(read: ConfigReader) -> AccessSettings:
    email_domains = read.string_list(
        "accessEmailDomains", example="example.com", pattern=HOSTNAME, shape="a DNS domain"
    )
    group_ids = read.string_list(
        "accessGroupIds",
        example="01234567-89ab-cdef-0123-456789abcdef",
        pattern=UUID,
        shape="an Access group UUID",
    )
    if not email_domains and not group_ids:
        # An allow policy with no include rule would let nobody in (or, worse, be rejected at deploy).
        raise ConfigError(
            read.key("accessEmailDomains"),
            f"is empty and so is {read.key('accessGroupIds')}: name at least one domain or group",
            "example.com",
            list_item=True,
        )
    return AccessSettings(
        team_name=read.string(
            "accessTeamName",
            example="my-team",
            pattern=TEAM_NAME,
            shape="the Zero Trust team name (<team>.cloudflareaccess.com)",
        ),
        email_domains=email_domains,
        group_ids=group_ids,
        require_device_posture=read.boolean("accessRequireDevicePosture"),
        session_duration=read.string(
            "accessSessionDuration", example="24h", pattern=DURATION, shape="a duration like 30m or 24h"
        ),
        service_token_duration=read.string(
            "serviceTokenDuration", example="8760h", pattern=DURATION, shape="a duration like 8760h"
        ),
        service_token_secret_version=read.integer(
            "serviceTokenSecretVersion", example=2, minimum=1, maximum=1_000_000
        ),
    )


def _gateway_settings(read: ConfigReader) -> GatewaySettings:
    return GatewaySettings(
        tls_decryption=read.choice("gatewayTlsDecryption", (TLS_DECRYPTION_DECLARE, TLS_DECRYPTION_EXTERNAL)),
        dlp_profile=read.choice("dlpProfile", (DLP_PROFILE_CUSTOM, DLP_PROFILE_PREDEFINED)),
    )


def load_cloudflare(read: ConfigReader, cloudflare: ConfigReader) -> CloudflareConfig:
    """`read` covers the project namespace, `cloudflare` the provider's (for its API token)."""
    api_hostname = read.hostname("apiHostname", example="api.example.com")
    origin_hostname = read.hostname("originHostname", example="gpu-origin.example.com")
    if api_hostname == origin_hostname:
        raise ConfigError(
            read.key("originHostname"),
            f"must differ from {read.key('apiHostname')} (the Worker owns that name)",
            "gpu-origin.example.com",
        )
    return CloudflareConfig(
        account_id=read.cloudflare_id("accountId", what="account id"),
        zone_id=read.cloudflare_id("zoneId", what="zone id"),
        api_hostname=api_hostname,
        origin_hostname=origin_hostname,
        resource_prefix=read.string(
            "resourcePrefix",
            example="steadytext-dev",
            pattern=RESOURCE_PREFIX,
            shape="4-42 lower-case letters, digits and dashes",
        ),
        origin_port=read.integer("originPort", example=8000, minimum=1, maximum=65535),
        worker=_worker_settings(read),
        access=_access_settings(read),
        gateway=_gateway_settings(read),
        receipt_key_version=read.integer("receiptKeyVersion", example=2, minimum=1, maximum=1_000_000),
        api_token=cloudflare.secret("apiToken", example="<api-token-with-workers-d1-r2-zero-trust-edit>"),
        origin_token=read.secret("originToken", example="$(openssl rand -hex 32)"),
        metrics_token=read.secret("metricsToken", example="$(openssl rand -hex 32)"),
        r2_access_key_id=read.secret("r2AccessKeyId", example="<r2-api-token-access-key-id>"),
        r2_secret_access_key=read.secret("r2SecretAccessKey", example="<r2-api-token-secret-access-key>"),
    )
