"""Mandatory in prod, advisory in dev; the evaluator applies the level the stack's policy config names."""

import json
import subprocess
import sys

import pytest
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from infra import REPO_ROOT
from infra.config.reader import ConfigError
from infra.policy.enforcement import enforcement_level, policy_config
from infra.policy.evaluate import run_policies
from infra.policy.model import D1_DATABASE, LAUNCH_TEMPLATE
from infra.policy.pack import POLICIES
from infra.policy.rules.gpu_ingress import gpu_hosts_no_inbound
from infra.policy.rules.protection import stateful_resources_protected
from tests.policy.conftest import res


def test_the_stack_name_sets_the_default_level():
    assert enforcement_level("prod", None) == "mandatory"
    assert enforcement_level("dev", None) == "advisory"


def test_stack_config_overrides_the_level_and_a_bad_value_names_the_key():
    assert enforcement_level("dev", "mandatory") == "mandatory"
    with pytest.raises(ConfigError, match="steadytext-edge:policyEnforcement: must be one of advisory"):
        enforcement_level("dev", "strict", "steadytext-edge:policyEnforcement")


def test_the_config_covers_every_policy_and_requires_protection_only_in_prod():
    prod, dev = policy_config("prod", "mandatory"), policy_config("dev", "advisory")
    assert set(prod) == set(dev) == {policy.name for policy in POLICIES}
    assert {entry["enforcementLevel"] for entry in prod.values()} == {"mandatory"}
    assert {entry["enforcementLevel"] for entry in dev.values()} == {"advisory"}
    assert prod[stateful_resources_protected.name]["requireProtection"] is True
    assert dev[stateful_resources_protected.name]["requireProtection"] is False
    assert prod["gpu-tasks-stay-warm"]["minimumTasks"] == 2
    assert dev["gpu-tasks-stay-warm"]["minimumTasks"] == 0  # dev scales to zero


def test_the_level_decides_whether_a_violation_blocks():
    unprotected = res(D1_DATABASE, "db")
    config = {stateful_resources_protected.name: {"requireProtection": True}}
    for level, blocking in (("mandatory", True), ("advisory", False)):
        config[stateful_resources_protected.name]["enforcementLevel"] = level
        [violation] = run_policies([unprotected], [stateful_resources_protected], config)
        assert (violation.level, violation.blocking) == (level, blocking)
    config[stateful_resources_protected.name]["enforcementLevel"] = "disabled"
    assert run_policies([unprotected], [stateful_resources_protected], config) == []


def test_a_value_unknown_in_a_preview_is_reported_without_blocking():
    host = res(LAUNCH_TEMPLATE, "gpu", {"instanceType": UNKNOWN_STRING_VALUE})
    [violation] = run_policies([host], [gpu_hosts_no_inbound])
    assert violation.level == "advisory" and "could not run" in violation.message


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_the_cli_prints_the_policy_pack_config_for_a_stack(stack):
    result = subprocess.run(
        [sys.executable, "-m", "infra.policy.enforcement", "--stack", stack],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert json.loads(result.stdout) == policy_config(stack, enforcement_level(stack, None))


def test_the_cli_rejects_an_unknown_stack_without_a_traceback():
    result = subprocess.run(
        [sys.executable, "-m", "infra.policy.enforcement", "--stack", "nope"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "Pulumi.nope.yaml" in result.stderr and "Traceback" not in result.stderr
