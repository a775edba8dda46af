"""`python -m infra.preflight`: the checklist against a local Cloudflare fake and moto, through `main()`
(argument parsing, the stack files, real HTTP to both fakes, the printed report and the exit code)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from infra import REPO_ROOT
from infra.preflight.__main__ import main
from infra.prerequisites import TOKEN_PERMISSIONS
from tests.preflight.cloudflare_fake import TOKEN, policies_granting
from tests.preflight.conftest import ACCOUNT_ID, ZONE_ID, write_stack


def run(capsys, tmp_path, stack="dev", overrides=None, extra=()):
    root = write_stack(tmp_path, stack, overrides)
    code = main(["--stack", stack, *extra], root=root)
    out, err = capsys.readouterr()
    return code, out, err


def line(out: str, title: str) -> str:
    """The checklist line of a check, with its fix line when there is one."""
    lines = out.splitlines()
    for i, text in enumerate(lines):
        if text.startswith("  ") and text.strip()[2:].split(": ", 1)[0] == title:
            fix = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].strip().startswith("fix:") else ""
            return f"{text}\n{fix}"
    raise AssertionError(f"no checklist line {title!r} in:\n{out}")


def test_all_green_exits_0(cloudflare, aws, capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path)
    assert code == 0, out
    assert not [text for text in out.splitlines() if text.startswith(("  ✗", "  !"))], out
    assert "0 failed: ready for `pulumi up`" in out
    permissions = line(out, "API token permissions").lstrip()
    assert permissions.startswith(f"✓ API token permissions: all {len(TOKEN_PERMISSIONS)}")
    assert "steadytext-test.cloudflareaccess.com" in line(out, "Access team")
    # dev: gpuMaxInstances 2 × g5.xlarge (4 vCPUs) against the 64-vCPU quota moto answers.
    assert "'Running On-Demand G and VT instances' is 64 vCPUs" in line(out, "vCPU quota")
    assert "need 8" in line(out, "vCPU quota")
    assert "✓ instance type offered: g5.xlarge in us-east-1: in 5 availability zones" in out
    assert "subnets go into us-east-1a, us-east-1b" in line(out, "instance type offered")
    assert "✓ ECR reachable" in out and "✓ Secrets Manager reachable" in out


def test_missing_permission_is_named_with_its_fix(cloudflare, aws, account, capsys, tmp_path):
    without_pii = [p for p in TOKEN_PERMISSIONS if p.group != "Zero Trust: PII"]
    account.policies = policies_granting(without_pii, account_id=ACCOUNT_ID, zone_id=ZONE_ID)
    code, out, _ = run(capsys, tmp_path)
    assert code == 1
    found = line(out, "API token permissions")
    assert found.lstrip().startswith("✗")
    assert "missing Zero Trust: PII → Read (account)" in found
    assert "fix: edit the token at https://dash.cloudflare.com/profile/api-tokens" in found
    assert "add Zero Trust: PII → Read for account" in found


def test_permission_on_another_account_or_denied_does_not_count(cloudflare, aws, account, capsys, tmp_path):
    account.policies = policies_granting(account_id="ffffffffffffffffffffffffffffffff", zone_id=ZONE_ID)
    code, out, _ = run(capsys, tmp_path)
    assert code == 1
    assert "missing Workers Scripts → Edit (account)" in line(out, "API token permissions")

    account.policies = policies_granting(account_id=ACCOUNT_ID, zone_id=ZONE_ID) + [
        {
            "id": "p3",
            "effect": "deny",
            "permission_groups": [{"id": "x", "name": "DNS Write"}],
            "resources": {f"com.cloudflare.api.account.zone.{ZONE_ID}": "*"},
        }
    ]
    code, out, _ = run(capsys, tmp_path)
    assert code == 1
    assert "missing DNS → Edit (zone)" in line(out, "API token permissions")


def test_unreadable_token_policies_are_a_warning_listing_them(cloudflare, aws, account, capsys, tmp_path):
    account.policies_readable = False
    code, out, _ = run(capsys, tmp_path)
    assert code == 0  # a warning, not a failure: nothing is known to be missing
    found = line(out, "API token permissions")
    assert found.lstrip().startswith("!") and "Zero Trust: PII → Read (account)" in found
    assert "1 warning(s), 0 failed" in out


def test_invalid_token_fails_and_stops_the_cloudflare_checks(cloudflare, aws, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", "not-the-token")
    code, out, _ = run(capsys, tmp_path)
    assert code == 1
    found = line(out, "API token")
    assert found.lstrip().startswith("✗") and "[1000] Invalid API Token" in found
    assert "API token permissions" not in out and "Access team" not in out
    assert "✓ AWS credentials" in out  # the AWS side is still checked


def test_custom_dlp_needs_the_addon(cloudflare, aws, account, capsys, tmp_path):
    account.dlp_addon = False
    code, out, _ = run(capsys, tmp_path, overrides={"dlpProfile": "custom"})
    assert code == 1
    found = line(out, "DLP add-on")
    assert found.lstrip().startswith("✗") and "fix: pulumi config set dlpProfile predefined" in found


def test_predefined_dlp_is_fine_without_the_addon(cloudflare, aws, account, capsys, tmp_path):
    account.dlp_addon = False
    code, out, _ = run(capsys, tmp_path, overrides={"dlpProfile": "predefined"})
    assert code == 0, out
    assert line(out, "DLP predefined profiles").lstrip().startswith("✓")
    assert "DLP add-on" not in out


def test_tls_decryption_off_fails_only_when_managed_elsewhere(cloudflare, aws, account, capsys, tmp_path):
    account.tls_decrypt = False
    code, out, _ = run(capsys, tmp_path, overrides={"gatewayTlsDecryption": "external"})
    assert code == 1
    found = line(out, "Gateway TLS decryption")
    assert found.lstrip().startswith("✗ Gateway TLS decryption: off")
    assert "pulumi config set gatewayTlsDecryption declare" in found

    code, out, _ = run(capsys, tmp_path, overrides={"gatewayTlsDecryption": "declare"})
    assert code == 0, out
    assert "declared by this stack" in line(out, "Gateway TLS decryption")


def test_vcpu_quota_below_type_times_max_instances_fails(cloudflare, aws, capsys, tmp_path):
    aws.values["L-DB2E81BA"] = 16.0
    # prod: gpuMaxInstances 6 × g5.xlarge (4 vCPUs) = 24 > 16.
    code, out, _ = run(capsys, tmp_path, stack="prod")
    assert code == 1
    found = line(out, "vCPU quota")
    assert found.lstrip().startswith("✗") and "is 16 vCPUs in us-east-1" in found and "need 24" in found
    assert "--quota-code L-DB2E81BA --desired-value 24" in found


def test_instance_type_not_offered_in_the_region_fails(cloudflare, aws, capsys, tmp_path):
    code, out, _ = run(capsys, tmp_path, overrides={"aws:region": "us-west-1"})
    assert code == 1
    found = line(out, "instance type offered")
    assert found.lstrip().startswith("✗")
    assert "g5.xlarge in us-west-1: gpuInstanceType g5.xlarge is offered in 0 availability zone(s)" in found
    assert "choose another gpuInstanceType or aws:region" in found


def test_service_token_expiring_in_10_days_is_a_warning(cloudflare, aws, account, capsys, tmp_path):
    expires = (datetime.now(UTC) + timedelta(days=10, hours=1)).isoformat().replace("+00:00", "Z")
    account.service_tokens = [
        {"id": "t1", "name": "steadytext-dev-worker", "client_id": "abc.access", "expires_at": expires},
        {"id": "t2", "name": "someone-else", "client_id": "x.access", "expires_at": "2020-01-01T00:00:00Z"},
    ]
    code, out, _ = run(capsys, tmp_path)
    assert code == 0, out  # warnings are allowed
    found = line(out, "Access service token expiry")
    assert found.lstrip().startswith("! Access service token expiry: steadytext-dev-worker expires in 10 day")
    assert "serviceTokenSecretVersion" in found


def test_expired_service_token_fails(cloudflare, aws, account, capsys, tmp_path):
    account.service_tokens = [
        {"id": "t1", "name": "steadytext-dev-worker", "expires_at": "2020-01-01T00:00:00Z"}
    ]
    code, out, _ = run(capsys, tmp_path)
    assert code == 1
    assert line(out, "Access service token expiry").lstrip().startswith("✗")


def test_unreadable_subscriptions_warn_about_workers_paid(cloudflare, aws, account, capsys, tmp_path):
    account.subscriptions = None
    code, out, _ = run(capsys, tmp_path)
    assert code == 0
    assert "Billing → Read" in line(out, "Workers Paid")

    account.subscriptions = ["workers_free", "teams_free"]
    code, out, _ = run(capsys, tmp_path)
    assert code == 1
    assert line(out, "Workers Paid").lstrip().startswith("✗")


def test_no_zero_trust_organization_fails(cloudflare, aws, account, capsys, tmp_path):
    account.zero_trust = False
    code, out, _ = run(capsys, tmp_path)
    assert code == 1
    assert line(out, "Zero Trust plan").lstrip().startswith("✗")
    assert "with the team name steadytext-test" in line(out, "Access team")


def test_team_name_mismatch_names_the_account_team(cloudflare, aws, account, capsys, tmp_path):
    account.team = "acme"
    code, out, _ = run(capsys, tmp_path)
    assert code == 1
    assert "fix: pulumi config set accessTeamName acme" in line(out, "Access team")


@pytest.mark.parametrize("case", ["green", "bad-permissions", "invalid-token"])
def test_the_checklist_never_prints_the_token(cloudflare, aws, account, monkeypatch, capsys, tmp_path, case):
    if case == "bad-permissions":
        account.policies = []
    if case == "invalid-token":
        monkeypatch.setenv("CLOUDFLARE_API_TOKEN", TOKEN[::-1])
    _, out, err = run(capsys, tmp_path)
    for secret in (TOKEN, TOKEN[::-1]):
        assert secret not in out + err


def test_config_error_exits_2_naming_the_key(cloudflare, aws, capsys, tmp_path):
    code, out, err = run(capsys, tmp_path, overrides={"accountId": "REPLACE_WITH_CLOUDFLARE_ACCOUNT_ID"})
    assert code == 2 and out == ""
    assert "steadytext-edge:accountId" in err and "pulumi config set" in err


def test_missing_token_exits_2_naming_the_variable(cloudflare, aws, monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("CLOUDFLARE_API_TOKEN")
    code, _, err = run(capsys, tmp_path)
    assert code == 2 and "CLOUDFLARE_API_TOKEN is not set" in err


def test_unknown_stack_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["--stack", "staging"], root=tmp_path)
    assert exit_.value.code == 2


def checklist_titles(out: str) -> set[str]:
    return {
        text.strip()[2:].split(": ", 1)[0]
        for text in out.splitlines()
        if text.startswith("  ") and text.strip()[:1] in "✓!✗"
    }


def test_docs_describe_every_check_and_no_other(cloudflare, aws, account, capsys, tmp_path):
    account.token_expires_on = "2099-01-01T00:00:00Z"
    titles: set[str] = set()
    for dlp in ("custom", "predefined"):
        code, out, _ = run(capsys, tmp_path, overrides={"dlpProfile": dlp})
        assert code == 0, out
        titles |= checklist_titles(out)
    docs = (REPO_ROOT / "docs" / "infra.md").read_text().split("## Preflight", 1)[1].split("\n## ", 1)[0]
    rows = {
        row.split("|")[1].strip().replace("`", "")
        for row in docs.splitlines()
        if row.startswith("| ") and not row.startswith(("| check ", "|---"))
    }
    assert titles == rows


def test_the_readmes_deploy_guide_runs_the_preflight_before_any_pulumi_command():
    readme = (REPO_ROOT / "README.md").read_text()
    guide = readme.split("## Deploy to Cloudflare and AWS", 1)[1].split("\n## ", 1)[0]
    commands = [
        line.split("#", 1)[0].strip()
        for block in guide.split("```sh")[1:]
        for line in block.split("```", 1)[0].splitlines()
        if line.strip() and not line.lstrip().startswith(("#", "export "))
    ]
    assert commands[0] == ".venv/bin/python -m infra.preflight --stack dev"
    first_pulumi = next(i for i, command in enumerate(commands) if command.startswith("pulumi up"))
    assert "infra.preflight" in commands[first_pulumi - 1]
