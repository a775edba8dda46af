"""The Cloudflare checks: the API token, its permissions, and what the account must offer.

Endpoints (Cloudflare API v4, all GET): `/user/tokens/verify` (or `/accounts/{id}/tokens/verify` for an
account-owned token), `/user/tokens/{id}` (or `/accounts/{id}/tokens/{id}`) for the token's own
policies, `/accounts/{id}/gateway` (the Zero Trust account), `/accounts/{id}/access/organizations`,
`/accounts/{id}/dlp/profiles`, `/accounts/{id}/dlp/profiles/predefined/{id}`,
`/accounts/{id}/subscriptions`, `/zones/{id}`, `/accounts/{id}/gateway/configuration` and
`/accounts/{id}/access/service_tokens`. The permissions needed come from `infra/prerequisites.py`, the
one list the program and docs/infra.md are checked against.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from infra.components.cloudflare.gateway_dlp import PREDEFINED_PROFILES
from infra.config.cloudflare import (
    DLP_PROFILE_CUSTOM,
    TLS_DECRYPTION_EXTERNAL,
    CloudflareConfig,
)
from infra.preflight.cloudflare_api import CloudflareApi
from infra.preflight.report import Check, Status, failed, passed, warning
from infra.prerequisites import ACCOUNT, TOKEN_PERMISSIONS, ZONE, TokenPermission

AREA = "cloudflare"
TIME_BOUND = "time-bound"
# Below this many days left, an expiry is a warning (issue 11: the service token's 30/90-day lifetime).
EXPIRY_WARNING_DAYS = 14
TOKENS_PAGE = "https://dash.cloudflare.com/profile/api-tokens"
ZERO_TRUST_DASHBOARD = "https://one.dash.cloudflare.com"


def check_cloudflare(api: CloudflareApi, cf: CloudflareConfig) -> list[Check]:
    token = _verify_token(api, cf.account_id)
    if token.check.status is Status.FAIL:
        # Nothing else can be read with a token Cloudflare refuses.
        return [token.check]
    checks = [token.check, _permissions(api, cf, token)]
    checks += [
        _zero_trust_account(api, cf),
        _access_team(api, cf),
        _dlp(api, cf),
        _workers_paid(api, cf),
        _zone(api, cf),
        _tls_decryption(api, cf),
    ]
    checks += [_token_expiry(token), _service_token_expiry(api, cf)]
    return [check for check in checks if check is not None]


class _Token:
    def __init__(self, check: Check, token_id: str = "", owner_path: str = "", expires_on: str | None = None):
        self.check = check
        self.id = token_id
        self.owner_path = owner_path  # "/user" or "/accounts/<id>": where the token's own record lives
        self.expires_on = expires_on


def _verify_token(api: CloudflareApi, account_id: str) -> _Token:
    title = "API token"
    # A user token verifies under /user, an account-owned token only under its account.
    for owner_path in ("/user", f"/accounts/{account_id}"):
        answer = api.get(f"{owner_path}/tokens/verify")
        if answer.success and isinstance(answer.result, dict):
            break
    else:
        return _Token(
            failed(
                AREA,
                title,
                f"Cloudflare does not accept it: {answer.problem}",
                f"create a token at {TOKENS_PAGE} with the permissions in docs/infra.md and export it "
                "as CLOUDFLARE_API_TOKEN (the same token as `cloudflare:apiToken`)",
            )
        )
    status = answer.result.get("status")
    token_id = str(answer.result.get("id", ""))
    if status != "active":
        return _Token(
            failed(AREA, title, f"the token is {status}", f"re-enable or re-create it at {TOKENS_PAGE}")
        )
    return _Token(
        passed(AREA, title, f"valid and active (token id {token_id})"),
        token_id,
        owner_path,
        answer.result.get("expires_on"),
    )


def _permission_label(permission: TokenPermission) -> str:
    return f"{permission.group} → {permission.level} ({permission.scope})"


def _permissions(api: CloudflareApi, cf: CloudflareConfig, token: _Token) -> Check:
    title = "API token permissions"
    answer = api.get(f"{token.owner_path}/tokens/{token.id}")
    if not answer.success or not isinstance(answer.result, dict):
        listed = "; ".join(_permission_label(p) for p in TOKEN_PERMISSIONS)
        return warning(
            AREA,
            title,
            f"the token cannot read its own policies ({answer.problem}), so they were not checked",
            f"confirm at {TOKENS_PAGE} that it grants {listed}; or let the preflight check them by adding "
            "'API Tokens → Read' (user token) or 'Account API Tokens → Read' (account token)",
        )
    policies = answer.result.get("policies") or []
    missing = [p for p in TOKEN_PERMISSIONS if not _granted(p, policies, cf.account_id, cf.zone_id)]
    if missing:
        return failed(
            AREA,
            title,
            "missing " + "; ".join(f"{_permission_label(p)}: {p.why}" for p in missing),
            f"edit the token at {TOKENS_PAGE} and add "
            + ", ".join(f"{p.group} → {p.level}" for p in missing)
            + f" for account {cf.account_id}"
            + (f" / zone {cf.zone_id}" if any(p.scope == ZONE for p in missing) else ""),
        )
    return passed(AREA, title, f"all {len(TOKEN_PERMISSIONS)} permissions the program needs")


def _granted(permission: TokenPermission, policies: list[Any], account_id: str, zone_id: str) -> bool:
    """Whether an allow policy grants the permission on our account/zone and no deny policy takes it away.
    Edit (`… Write`) includes Read."""
    names = {permission.api_name}
    if permission.level == "Read":
        names.add(f"{permission.group} Write")

    def matching(effect: str) -> bool:
        return any(
            isinstance(policy, dict)
            and policy.get("effect") == effect
            and names
            & {
                group.get("name")
                for group in policy.get("permission_groups") or []
                if isinstance(group, dict)
            }
            and _covers(policy.get("resources") or {}, permission.scope, account_id, zone_id)
            for policy in policies
        )

    return matching("allow") and not matching("deny")


def _covers(resources: dict[str, Any], scope: str, account_id: str, zone_id: str) -> bool:
    """Whether a policy's resources include our account (account permissions) or zone (zone
    permissions): named, `*`, or "all zones of the account" (a zone map nested under the account)."""
    accounts = {f"com.cloudflare.api.account.{account_id}", "com.cloudflare.api.account.*"}
    zones = {f"com.cloudflare.api.account.zone.{zone_id}", "com.cloudflare.api.account.zone.*"}
    for key, value in resources.items():
        if scope == ACCOUNT and key in accounts:
            return True
        if scope == ZONE and key in zones:
            return True
        if scope == ZONE and key in accounts and isinstance(value, dict) and zones & set(value):
            return True
    return False


def _zero_trust_account(api: CloudflareApi, cf: CloudflareConfig) -> Check:
    title = "Zero Trust plan"
    answer = api.get(f"/accounts/{cf.account_id}/gateway")
    if answer.success and isinstance(answer.result, dict):
        return passed(AREA, title, "the account has a Zero Trust subscription (any plan will do)")
    return failed(
        AREA,
        title,
        f"the account has no Zero Trust subscription ({answer.problem})",
        f"open {ZERO_TRUST_DASHBOARD}, choose a team name and a plan (Free is enough unless dlpProfile is "
        "custom)",
    )


def _access_team(api: CloudflareApi, cf: CloudflareConfig) -> Check:
    title = "Access team"
    wanted = f"{cf.access.team_name}.cloudflareaccess.com"
    answer = api.get(f"/accounts/{cf.account_id}/access/organizations")
    if not answer.success or not isinstance(answer.result, dict):
        return failed(
            AREA,
            title,
            f"the account has no Zero Trust organization ({answer.problem})",
            f"create it at {ZERO_TRUST_DASHBOARD} with the team name {cf.access.team_name}",
        )
    found = answer.result.get("auth_domain")
    if found != wanted:
        team = str(found or "").removesuffix(".cloudflareaccess.com")
        return failed(
            AREA,
            title,
            f"the account's team domain is {found!r}, the stack expects {wanted!r}",
            f"pulumi config set accessTeamName {team}" if team else "set the team name in Zero Trust",
        )
    return passed(AREA, title, wanted)


def _dlp(api: CloudflareApi, cf: CloudflareConfig) -> Check:
    free_ids = {profile.id for profile in PREDEFINED_PROFILES}
    if cf.gateway.dlp_profile == DLP_PROFILE_CUSTOM:
        title = "DLP add-on"
        answer = api.get(f"/accounts/{cf.account_id}/dlp/profiles")
        if not answer.success or not isinstance(answer.result, list):
            return failed(
                AREA,
                title,
                f"cannot list the account's DLP profiles ({answer.problem})",
                "check the token's Zero Trust → Edit permission and the Zero Trust plan",
            )
        # The list holds only profiles the account may use: Free and Pay-as-you-go plans get just the two
        # predefined profiles `dlpProfile: predefined` uses; a custom profile or any other predefined one
        # means the DLP add-on.
        entitled = [
            p
            for p in answer.result
            if isinstance(p, dict) and (p.get("type") == "custom" or p.get("id") not in free_ids)
        ]
        if not entitled:
            return failed(
                AREA,
                title,
                "dlpProfile is custom, but the account can use only the predefined Financial Information "
                "and Social Security profiles: custom DLP profiles need the DLP add-on (Zero Trust "
                "Enterprise)",
                "pulumi config set dlpProfile predefined (or add the DLP add-on to the account)",
            )
        return passed(AREA, title, "the account can use custom DLP profiles (dlpProfile is custom)")
    title = "DLP predefined profiles"
    for profile in PREDEFINED_PROFILES:
        answer = api.get(f"/accounts/{cf.account_id}/dlp/profiles/predefined/{profile.id}")
        name = answer.result.get("name") if answer.success and isinstance(answer.result, dict) else None
        if name != profile.name:
            found = f"is {name!r}" if name else f"was not found ({answer.problem})"
            return failed(
                AREA,
                title,
                f"predefined profile {profile.id} ({profile.name}) {found}",
                "check the Zero Trust plan; or pulumi config set dlpProfile custom (needs the DLP add-on)",
            )
    names = ", ".join(p.name for p in PREDEFINED_PROFILES)
    return passed(AREA, title, f"{names} (dlpProfile is predefined; every Zero Trust plan has them)")


def _workers_paid(api: CloudflareApi, cf: CloudflareConfig) -> Check:
    title = "Workers Paid"
    answer = api.get(f"/accounts/{cf.account_id}/subscriptions")
    if not answer.success or not isinstance(answer.result, list):
        return warning(
            AREA,
            title,
            f"the account's subscriptions cannot be read with this token ({answer.problem})",
            "confirm Workers Paid at dash.cloudflare.com → Workers & Pages → Plans, or add "
            "'Billing → Read' to the token so the preflight can check it",
        )
    plans = {
        str((item.get("rate_plan") or {}).get("id", "")) for item in answer.result if isinstance(item, dict)
    }
    paid = sorted(plan for plan in plans if plan.lower().startswith("workers") and "free" not in plan.lower())
    if not paid:
        return failed(
            AREA,
            title,
            "no paid Workers subscription: Workers Trace Events Logpush and observability need Workers Paid",
            "subscribe at dash.cloudflare.com → Workers & Pages → Plans → Workers Paid",
        )
    return passed(AREA, title, ", ".join(paid))


def _zone(api: CloudflareApi, cf: CloudflareConfig) -> Check:
    title = "zone"
    answer = api.get(f"/zones/{cf.zone_id}")
    if not answer.success or not isinstance(answer.result, dict):
        return failed(
            AREA,
            title,
            f"zone {cf.zone_id} cannot be read ({answer.problem})",
            "pulumi config set zoneId <the zone's id from its dashboard Overview page>, and give the token "
            "DNS → Edit on it",
        )
    zone = answer.result
    name = str(zone.get("name", ""))
    owner = (zone.get("account") or {}).get("id")
    if owner != cf.account_id:
        return failed(
            AREA,
            title,
            f"zone {name} belongs to account {owner}, not accountId {cf.account_id}",
            "pulumi config set accountId to the zone's account, or choose a zone of that account",
        )
    hostnames = (cf.api_hostname, cf.origin_hostname)
    outside = [host for host in hostnames if host != name and not host.endswith(f".{name}")]
    if outside:
        return failed(
            AREA,
            title,
            f"{', '.join(outside)} not in zone {name}",
            f"pulumi config set apiHostname / originHostname to names under {name}",
        )
    if zone.get("status") != "active":
        return warning(
            AREA,
            title,
            f"{name} is {zone.get('status')}: its hostnames do not serve until it is active",
            "point the domain's nameservers at Cloudflare (dashboard → Overview) and wait for activation",
        )
    return passed(AREA, title, f"{name} (active) holds {cf.api_hostname} and {cf.origin_hostname}")


def _tls_decryption(api: CloudflareApi, cf: CloudflareConfig) -> Check:
    title = "Gateway TLS decryption"
    if cf.gateway.tls_decryption != TLS_DECRYPTION_EXTERNAL:
        return passed(AREA, title, "declared by this stack (gatewayTlsDecryption: declare)")
    answer = api.get(f"/accounts/{cf.account_id}/gateway/configuration")
    settings = (answer.result or {}).get("settings") if isinstance(answer.result, dict) else None
    enabled = bool(((settings or {}).get("tls_decrypt") or {}).get("enabled")) if answer.success else None
    if enabled:
        return passed(AREA, title, "on (managed outside this stack)")
    found = "off" if enabled is False else f"unknown ({answer.problem})"
    return failed(
        AREA,
        title,
        f"{found}: without it the Gateway DLP policy cannot see HTTPS bodies and never matches",
        f"have the account's Gateway owner turn on TLS decryption ({ZERO_TRUST_DASHBOARD} → Settings → "
        "Network → Inspect HTTPS), or let this stack own it: pulumi config set gatewayTlsDecryption declare",
    )


def _days_left(moment: str) -> float | None:
    try:
        when = datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - datetime.now(UTC)).total_seconds() / 86400


def _expiry(title: str, what: str, moment: str, fix: str) -> Check:
    """`what` ("name ", or "") starts the detail line."""
    days = _days_left(moment)
    if days is None:
        return warning(TIME_BOUND, title, f"{what}has an unreadable expiry {moment!r}", fix)
    if days <= 0:
        return failed(TIME_BOUND, title, f"{what}expired on {moment}", fix)
    if days < EXPIRY_WARNING_DAYS:
        return warning(TIME_BOUND, title, f"{what}expires in {days:.0f} day(s), on {moment}", fix)
    return passed(TIME_BOUND, title, f"{what}expires in {days:.0f} days, on {moment}")


def _token_expiry(token: _Token) -> Check | None:
    if not token.expires_on:
        return None  # the API token has no expiry
    return _expiry(
        "API token expiry", "", token.expires_on, f"extend the token's TTL or roll it at {TOKENS_PAGE}"
    )


def _service_token_expiry(api: CloudflareApi, cf: CloudflareConfig) -> Check:
    title = "Access service token expiry"
    # zero_trust.py names the Worker's token `<resourcePrefix>-worker`.
    name = f"{cf.resource_prefix}-worker"
    answer = api.get(f"/accounts/{cf.account_id}/access/service_tokens", name=name)
    if not answer.success or not isinstance(answer.result, list):
        return warning(
            TIME_BOUND,
            title,
            f"cannot list the account's service tokens ({answer.problem})",
            "check the token's Access: Service Tokens → Edit permission",
        )
    ours = [t for t in answer.result if isinstance(t, dict) and t.get("name") == name and t.get("expires_at")]
    if not ours:
        return passed(
            TIME_BOUND,
            title,
            f"{name} does not exist yet: the first pulumi up issues it for serviceTokenDuration "
            f"({cf.access.service_token_duration})",
        )
    soonest = min(ours, key=lambda t: _days_left(str(t["expires_at"])) or 0.0)
    return _expiry(
        title,
        f"{name} ",
        str(soonest["expires_at"]),
        'rotate it before it expires: docs/infra.md, "Service token" (pulumi config set '
        "serviceTokenSecretVersion <current + 1>; pulumi up)",
    )
