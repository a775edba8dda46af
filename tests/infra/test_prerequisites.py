"""infra/prerequisites.py is the one list of what the Cloudflare token and account must offer: checked
against what the program declares and calls (for both stacks and every Zero Trust choice) and against the
SDK's own "Accepted Permissions", and docs/infra.md's list is its generated copy."""

from __future__ import annotations

import re
from pathlib import Path

import pulumi_cloudflare
import pytest

from infra import REPO_ROOT
from infra.components.aws.audit_logging import DATASET_FIELDS
from infra.prerequisites import (
    ACCOUNT_PREREQUISITES,
    DOCS_FILE,
    TOKEN_PERMISSIONS,
    ZERO_TRUST_DATASETS,
    docs_block,
    main,
    prerequisites_for,
    render_markdown,
    write_docs,
)
from tests.infra.conftest import ZERO_TRUST_CHOICES

SDK = Path(pulumi_cloudflare.__file__).parent
JOB = "cloudflare:index/logpushJob:LogpushJob"


def sdk_module(token: str) -> Path:
    """The SDK module of a type token: `cloudflare:index/workersScript:WorkersScript` → workers_script.py."""
    name = token.split("/", 1)[1].split(":", 1)[0]
    return SDK / (re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower() + ".py")


def accepted_permissions(token: str) -> set[str]:
    """The "Accepted Permissions" the SDK documents for a resource or data source (empty when none)."""
    text = sdk_module(token).read_text()
    if "Accepted Permissions" not in text:
        return set()
    section = text.split("Accepted Permissions", 1)[1].split("##", 1)[0]
    return set(re.findall(r"^\s*- `([^`]+)`", section, re.MULTILINE))


@pytest.fixture(scope="module")
def cloudflare_calls(dev_run, prod_run, choices_run, batch_prod_run) -> set[str]:
    """Every Cloudflare resource type and data source the program uses, over all its config choices
    (and with the batch pipeline in wrangler.jsonc)."""
    calls: set[str] = set()
    for run in (dev_run, prod_run, choices_run, batch_prod_run):
        calls |= {r.type for r in run.resources if r.type.startswith("cloudflare:")}
        calls |= {token for token, _ in run.invocations if token.startswith("cloudflare:")}
    return calls


def test_every_cloudflare_call_has_a_permission_the_sdk_accepts(cloudflare_calls):
    uncovered, refused = [], []
    for token in sorted(cloudflare_calls):
        covering = [p for p in TOKEN_PERMISSIONS if token in p.used_by]
        if not covering:
            uncovered.append(token)
        accepted = accepted_permissions(token)
        if covering and accepted and not any(p.api_name in accepted for p in covering):
            refused.append((token, [p.api_name for p in covering], sorted(accepted)))
    assert uncovered == [], "add these to a TokenPermission's used_by in infra/prerequisites.py"
    assert refused == []


def test_no_permission_is_listed_for_a_call_the_program_does_not_make(cloudflare_calls):
    for permission in TOKEN_PERMISSIONS:
        assert set(permission.used_by) <= cloudflare_calls, permission.api_name
        assert all(sdk_module(token).is_file() for token in permission.used_by)


def test_logpush_on_zero_trust_datasets_asks_for_pii_read(choices_run):
    datasets = {job.input("dataset") for job in choices_run.of_type(JOB)}
    assert set(ZERO_TRUST_DATASETS) <= datasets <= set(DATASET_FIELDS)
    needed = {p.api_name for p in TOKEN_PERMISSIONS if JOB in p.used_by}
    assert {"Logs Write", "Zero Trust: PII Read"} <= needed


def test_docs_infra_md_holds_the_generated_list():
    assert docs_block(DOCS_FILE.read_text()) == render_markdown(), (
        "docs/infra.md is out of date: run .venv/bin/python -m infra.prerequisites --write"
    )


def test_the_readme_points_to_the_list_instead_of_keeping_a_copy():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "docs/infra.md#cloudflare-api-token-and-account-prerequisites" in readme
    assert "## Cloudflare API token and account prerequisites" in DOCS_FILE.read_text()
    copies = [
        name
        for p in TOKEN_PERMISSIONS
        for name in (p.api_name, f"{p.group} {p.level}", f"{p.group}: {p.level}")
        if name in readme
    ]
    assert copies == []


def test_the_module_prints_and_rewrites_the_docs_block(tmp_path, capsys):
    assert main([]) == 0
    assert capsys.readouterr().out == render_markdown() + "\n"
    stale = tmp_path / "infra.md"
    stale.write_text(DOCS_FILE.read_text().replace("| `D1 Write` |", "| `D1 Read` |"))
    write_docs(stale)
    assert stale.read_text() == DOCS_FILE.read_text()


def test_the_prerequisites_follow_the_config_choices():
    from infra import config as stack_config_module
    from tests.infra.conftest import TEST_SECRETS, run_pulumi, stack_config

    def cloudflare_config(overrides):
        loaded = []
        run_pulumi(
            lambda: loaded.append(stack_config_module.load().cloudflare),
            stack="dev",
            config=stack_config("dev", overrides),
            secret_keys=TEST_SECRETS,
        )
        return loaded[0]

    default = {item.name for item in prerequisites_for(cloudflare_config({}))}
    chosen = {item.name for item in prerequisites_for(cloudflare_config(ZERO_TRUST_CHOICES))}
    dlp_add_on = next(item.name for item in ACCOUNT_PREREQUISITES if "DLP add-on" in item.name)
    tls_elsewhere = next(item.name for item in ACCOUNT_PREREQUISITES if item.name.startswith("Gateway TLS"))
    assert dlp_add_on in default and dlp_add_on not in chosen
    assert tls_elsewhere in chosen and tls_elsewhere not in default
    always = {item.name for item in ACCOUNT_PREREQUISITES if item.needed_when is None}
    assert always <= default & chosen
