"""GitHub workflows: actionlint (with shellcheck) finds nothing, and they do what docs/guardrails.md says."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra import REPO_ROOT

WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
SCRIPTS = sorted((REPO_ROOT / ".github" / "scripts").glob("*.sh"))
VENV_BIN = Path(sys.executable).parent
# A release tag (v7, v5.0.1) or a full commit sha: never a branch.
PINNED = re.compile(r"^[^@\s]+@(v\d+(\.\d+){0,2}|[0-9a-f]{40})$")


def tool(name: str) -> str:
    found = shutil.which(name, path=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, f"{name} is not installed: `make setup` installs it (dev extra)"
    return found


def actionlint(*paths: Path, cwd: Path = REPO_ROOT) -> list[dict]:
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    result = subprocess.run(
        [tool("actionlint"), "-format", "{{json .}}", *map(str, paths)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout or "[]")


def load(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / ".github" / "workflows" / name).read_text())


def steps_using(job: dict, action: str) -> list[dict]:
    return [step for step in job["steps"] if step.get("uses", "").startswith(f"{action}@")]


def test_actionlint_finds_nothing_in_any_workflow():
    assert WORKFLOWS
    findings = actionlint(*WORKFLOWS)
    assert [f"{f['filepath']}:{f['line']}: {f['message']}" for f in findings] == []


def test_actionlint_does_catch_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n"
        "      - run: echo ${{ github.event.pull_request.title }}\n"
        "      - uses: actions/checkout@v5\n        with:\n          no-such-input: 1\n"
    )
    kinds = {finding["kind"] for finding in actionlint(broken, cwd=tmp_path)}
    assert {"expression", "action"} <= kinds


def test_the_workflow_scripts_pass_shellcheck():
    assert SCRIPTS
    result = subprocess.run(
        [tool("shellcheck"), *map(str, SCRIPTS)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_release(workflow):
    uses = re.findall(r"uses:\s*(\S+)", workflow.read_text())
    assert [u for u in uses if not u.startswith("./") and not PINNED.match(u)] == []


def test_pull_requests_get_lint_tests_the_offline_plan_and_a_previewed_policy_check_per_stack():
    jobs = load("pull-request.yml")["jobs"]
    runs = {
        name: " ".join(step.get("run", "") for step in job.get("steps", [])) for name, job in jobs.items()
    }
    assert "make lint" in runs["lint"] and "make test" in runs["test"]
    assert "plan-base.sh" in runs["offline-plan"] and "plan-pr.sh" in runs["offline-plan"]
    assert steps_using(jobs["offline-plan"], "actions/github-script")
    preview = jobs["preview"]
    assert set(preview["needs"]) == {"lint", "test", "offline-plan"}
    assert preview["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    [pulumi] = steps_using(preview, "pulumi/actions")
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["policyPacks"] == "infra/policy"
    assert "infra.policy.enforcement" in runs["preview"]
    assert preview["permissions"]["id-token"] == "write"  # AWS credentials through OIDC, no stored keys


def test_main_updates_dev_then_prod_behind_its_environment():
    deploy = load("deploy.yml")
    jobs = deploy["jobs"]
    assert jobs["prod"]["needs"] == "dev"
    assert (jobs["dev"]["with"]["stack"], jobs["prod"]["with"]["stack"]) == ("dev", "prod")
    # A plan is valid only against the state it was made from: deploys queue, and are never cut short.
    assert deploy["concurrency"] == {"group": "deploy", "cancel-in-progress": False}
    up = load("pulumi-up.yml")["jobs"]["up"]
    assert up["environment"] == "${{ inputs.stack }}"  # prod's required reviewers gate the update
    [pulumi] = steps_using(up, "pulumi/actions")
    assert pulumi["with"]["command"] == "up" and pulumi["with"]["policyPacks"] == "infra/policy"


def test_the_update_applies_exactly_the_plan_of_the_preview_the_reviewer_saw():
    """`pulumi preview --save-plan` (pulumi/actions `plan:` on preview) before the approval, the plan kept as
    an artifact, and `pulumi up --plan` of that same file after it."""
    jobs = load("pulumi-up.yml")["jobs"]
    preview, up = jobs["preview"], jobs["up"]
    assert "environment" not in preview  # the preview runs before anyone approves, to be reviewed
    [previewed] = steps_using(preview, "pulumi/actions")
    assert previewed["with"]["command"] == "preview"
    assert previewed["with"]["comment-on-summary"] is True  # the diff on the run page the reviewer opens
    assert previewed["with"]["policyPacks"] == "infra/policy"
    [upload] = steps_using(preview, "actions/upload-artifact")
    assert upload["with"]["path"] == previewed["with"]["plan"]
    assert upload["with"]["if-no-files-found"] == "error"

    assert up["needs"] == "preview"
    [download] = steps_using(up, "actions/download-artifact")
    assert download["with"]["name"] == upload["with"]["name"]
    [applied] = steps_using(up, "pulumi/actions")
    plan_file = previewed["with"]["plan"].rsplit("/", 1)[1]
    assert applied["with"]["plan"] == f"{download['with']['path']}/{plan_file}"
    assert applied["with"]["stack-name"] == previewed["with"]["stack-name"]
    order = [step.get("uses", "").split("@")[0] for step in up["steps"]]
    assert order.index("actions/download-artifact") < order.index("pulumi/actions")


def test_the_image_push_logs_in_to_ecr_in_the_job_not_through_the_program():
    """No ECR token reaches the program (it would be kept in state, pulumi-docker-build#424): the update job
    logs the runner's Docker in to ECR before `pulumi up` builds and pushes."""
    up = load("pulumi-up.yml")["jobs"]["up"]
    order = [step.get("uses", "").split("@")[0] for step in up["steps"]]
    assert order.index("aws-actions/configure-aws-credentials") < order.index("aws-actions/amazon-ecr-login")
    assert order.index("aws-actions/amazon-ecr-login") < order.index("pulumi/actions")


def test_the_preflight_runs_in_the_preview_the_reviewer_reads_but_never_blocks_the_deploy():
    workflow = load("pulumi-up.yml")
    preview = workflow["jobs"]["preview"]
    names = [step.get("name", step.get("uses", "")) for step in preview["steps"]]
    [preflight] = [step for step in preview["steps"] if "infra.preflight" in step.get("run", "")]
    assert preflight["continue-on-error"] is True and "optional" in preflight["name"]
    assert preflight["if"] == "${{ inputs.preflight }}"
    # `on:` is YAML 1.1's `True` key to PyYAML.
    assert workflow[True]["workflow_call"]["inputs"]["preflight"]["default"] is True
    assert names.index(preflight["name"]) < names.index(steps_using(preview, "pulumi/actions")[0]["uses"])
    [credentials] = steps_using(preview, "aws-actions/configure-aws-credentials")
    assert names.index(preflight["name"]) > names.index(credentials["uses"])
