"""The offline plan (`python -m infra.plan`) over the real program under mocks, for both stacks."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace

import pytest

from infra import REPO_ROOT
from infra.plan import evaluate
from infra.plan.__main__ import EXIT_BAD_INPUT, EXIT_POLICY_BLOCKED, main
from infra.plan.diff import diff_plans
from infra.plan.inventory import resource_key
from infra.policy.enforcement import policy_config
from infra.policy.evaluate import run_policies
from infra.policy.model import (
    ACCESS_APPLICATION,
    D1_DATABASE,
    LOGPUSH_JOB,
    S3_PUBLIC_ACCESS_BLOCK,
    SCALABLE_TARGET,
    SECURITY_GROUP,
)
from infra.policy.pack import POLICIES
from pulumi_offline import PROJECT, TEST_SECRETS

STACKS = ("dev", "prod")
# The harness's computed secrets (Access client secret, tunnel token, ECR password) share this prefix.
MOCK_SECRET_PREFIX = "SECRET-"


def cli(*args: str) -> tuple[int, str, str]:
    """`python -m infra.plan ARGS` in this process (the Worker bundle is built once per process)."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "infra.plan", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def outputs() -> dict[str, dict[str, tuple[int, str, str]]]:
    """Per stack: the JSON plan (with policy results) and the text plan, as the CLI printed them."""
    return {
        stack: {
            "json": cli("--stack", stack, "--json", "--policy"),
            "text": cli("--stack", stack, "--policy"),
        }
        for stack in STACKS
    }


@pytest.fixture(scope="module")
def plans(outputs) -> dict[str, dict]:
    return {stack: json.loads(outputs[stack]["json"][1]) for stack in STACKS}


@pytest.mark.parametrize("stack", STACKS)
def test_the_plan_lists_every_resource_the_program_registers(stack, plans, outputs, request):
    recorded = request.getfixturevalue(f"{stack}_run").resources
    planned = {r["key"]: r for r in plans[stack]["resources"]}
    assert set(planned) == {resource_key(r.urn) for r in recorded}
    assert len(planned) == len(recorded)
    for r in recorded:
        entry = planned[resource_key(r.urn)]
        assert (entry["type"], entry["name"], entry["protect"], entry["custom"]) == (
            r.type,
            r.name,
            r.protect,
            r.custom,
        )
    text = outputs[stack]["text"][1]
    missing = [f"{r.type}  {r.name}" for r in recorded if f"{r.type}  {r.name}" not in text]
    assert missing == []


@pytest.mark.parametrize(("stack", "bounds"), [("dev", (0, 1)), ("prod", (2, 5))])
def test_the_plan_shows_the_auto_scaling(stack, bounds, outputs):
    text = outputs[stack]["text"][1]
    target = text.split(f"aws:appautoscaling/target:Target  steadytext-{stack}-tasks\n", 1)[1]
    assert f"maxCapacity = {bounds[1]}\n    minCapacity = {bounds[0]}\n" in target
    policy = text.split(f"aws:appautoscaling/policy:Policy  steadytext-{stack}-work-per-task\n", 1)[1]
    assert 'policyType = "TargetTrackingScaling"' in policy
    assert "customizedMetricSpecification.metrics[4].expression" in policy


def test_prod_protects_what_dev_leaves_unprotected(plans):
    protected = {stack: {r["type"] for r in plans[stack]["resources"] if r["protect"]} for stack in STACKS}
    assert protected["dev"] == set()
    assert {
        "cloudflare:index/d1Database:D1Database",
        "cloudflare:index/workersKvNamespace:WorkersKvNamespace",
        "cloudflare:index/r2Bucket:R2Bucket",
    } <= protected["prod"]
    changed = {c["name"]: c["changes"] for c in diff_plans(plans["dev"], plans["prod"])["changed"]}
    assert {"path": "(protect)", "before": False, "after": True} in changed["edge-storage-d1"]


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_appears_anywhere_in_the_output(stack, outputs, plans):
    printed = outputs[stack]["json"][1] + outputs[stack]["text"][1] + outputs[stack]["text"][2]
    assert [value for value in TEST_SECRETS.values() if value in printed] == []
    assert MOCK_SECRET_PREFIX not in printed
    assert plans[stack]["outputs"]["tunnelToken"] == "[secret]"
    assert "tunnelToken = [secret]" in outputs[stack]["text"][1]


def test_the_plan_is_deterministic_across_processes():
    # Both runs back to back: the shared tree may change between a module fixture and this test.
    result = run_module("--stack", "dev", "--json", "--policy")
    assert result.returncode == 0, result.stderr
    code, out, _ = cli("--stack", "dev", "--json", "--policy")
    assert json.loads(result.stdout) == json.loads(out)


def test_the_diff_against_a_saved_plan_shows_a_deliberately_changed_config(tmp_path):
    key = f"{PROJECT}:accessSessionDuration"
    saved = tmp_path / "base.json"
    saved.write_text(json.dumps(evaluate.evaluate_stack("dev", {key: "12h"}).plan))
    code, out, err = cli("--stack", "dev", "--diff", str(saved), "--json")
    assert code == 0, err
    diff = json.loads(out)
    assert (diff["added"], diff["removed"], diff["outputs"]) == ([], [], [])
    assert [(c["name"], c["changes"]) for c in diff["changed"]] == [
        ("zero-trust-origin-app", [{"path": "sessionDuration", "before": "12h", "after": "24h"}])
    ]
    assert diff["base"].startswith(str(saved))


@pytest.mark.parametrize("stack", STACKS)
def test_policy_results_decide_the_exit_code_by_the_stacks_enforcement(stack, outputs, plans):
    policy = plans[stack]["policy"]
    assert policy["enforcement"] == {"dev": "advisory", "prod": "mandatory"}[stack]
    assert {v["level"] for v in policy["violations"]} <= {policy["enforcement"], "advisory"}
    blocking = any(v["level"] == "mandatory" for v in policy["violations"])
    assert outputs[stack]["json"][0] == (EXIT_POLICY_BLOCKED if blocking else 0)
    assert (
        f"Policy pack ({policy['enforcement']}): {len(policy['violations'])} violation(s)"
        in outputs[stack]["text"][1]
    )


def test_a_bad_stack_config_prints_the_config_error_and_exits_non_zero(monkeypatch):
    real = evaluate.stack_config
    monkeypatch.setattr(
        evaluate,
        "stack_config",
        lambda stack, overrides=None: real(stack, {f"{PROJECT}:originPort": "eighty"}),
    )
    code, out, err = cli("--stack", "dev")
    assert code == EXIT_BAD_INPUT and out == ""
    assert err.startswith(f"error: config {PROJECT}:originPort: must be an integer")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--stack", "staging"), "no stack file Pulumi.staging.yaml (stacks: dev, prod)"),
        (("--stack", "dev", "--diff", "nowhere"), "--diff nowhere: neither a plan file nor a stack"),
        (("--stack", "dev", "--diff", "pyproject.toml"), "cannot read plan file pyproject.toml"),
    ],
)
def test_bad_arguments_are_one_line_errors(args, message):
    code, out, err = cli(*args)
    assert (code, out) == (EXIT_BAD_INPUT, "")
    assert err.startswith("error: ") and message in err


@pytest.fixture(scope="module")
def prod_declared() -> list:
    return evaluate.evaluate_stack("prod").declared


def mutated(declared: list, type_: str, change) -> list:
    """The program's real resources with every resource of `type_` replaced by `change(resource)`."""
    return [change(d) if d.type == type_ else d for d in declared]


@pytest.mark.parametrize(
    ("policy_name", "type_", "change"),
    [
        (
            "gpu-hosts-no-inbound",
            SECURITY_GROUP,
            lambda d: replace(
                d, props={**d.props, "ingress": [{"protocol": "tcp", "fromPort": 22, "toPort": 22}]}
            ),
        ),
        ("stateful-resources-protected", D1_DATABASE, lambda d: replace(d, protect=False)),
        ("gpu-tasks-stay-warm", SCALABLE_TARGET, lambda d: replace(d, props={**d.props, "minCapacity": 1})),
        ("logpush-jobs-exist", LOGPUSH_JOB, lambda d: replace(d, props={**d.props, "enabled": False})),
        (
            "s3-buckets-encrypted-and-private",
            S3_PUBLIC_ACCESS_BLOCK,
            lambda d: replace(d, props={**d.props, "blockPublicPolicy": False}),
        ),
        (
            "access-applications-have-policies",
            ACCESS_APPLICATION,
            lambda d: replace(d, props={**d.props, "policies": []}),
        ),
    ],
)
def test_the_pack_checks_the_programs_real_resources(prod_declared, policy_name, type_, change):
    """Each guardrail bites on a one-property change of the real prod program (so passing is not vacuous)."""
    [policy] = [p for p in POLICIES if p.name == policy_name]
    config = policy_config("prod", "mandatory")
    before = run_policies(prod_declared, [policy], config)
    after = run_policies(mutated(prod_declared, type_, change), [policy], config)
    assert before == [] and after and all(v.blocking for v in after)
