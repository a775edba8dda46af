"""The scheduled drift check: per stack, `pulumi refresh --preview-only` and `pulumi preview
--expect-no-changes` (run by .github/scripts/drift.sh against a stand-in `pulumi` that answers like the CLI),
a verdict that tells drift from a check that could not run, and the workflow's script that keeps exactly one
issue open while a stack has drifted (run under node against a stand-in GitHub API)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from infra import REPO_ROOT
from infra.drift import main as drift_main

SCRIPT = REPO_ROOT / ".github" / "scripts" / "drift.sh"
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "drift.yml"
STACK = "acme/prod"
URN = "urn:pulumi:prod::steadytext-edge::aws:ec2/securityGroup:SecurityGroup::steadytext-prod-egress-only"


def digest(summary: dict, steps: list | None = None) -> str:
    """What `pulumi preview --json` / `pulumi refresh --preview-only --json` print (a preview digest)."""
    return json.dumps({"steps": steps or [], "changeSummary": summary, "duration": 1})


CLEAN = (digest({"same": 61}), 0)
REFRESH_DRIFT = (
    digest({"same": 60, "update": 1}, [{"op": "refresh", "urn": URN, "diffReasons": ["ingress"]}]),
    0,
)
# --expect-no-changes: the CLI exits non-zero when the preview proposes changes.
PREVIEW_DRIFT = (digest({"same": 60, "update": 1}, [{"op": "update", "urn": URN}]), 255)
BROKEN = ("", 255)


@pytest.fixture
def fake_pulumi(tmp_path):
    """A `pulumi` on PATH that records its arguments and answers each command from a canned reply."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    replies = tmp_path / "replies"
    replies.mkdir()
    (bin_dir / "pulumi").write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        f'cat "{replies}/$1.out"\n'
        f'echo "error: stand-in stderr of $1" >&2\n'
        f'exit "$(cat "{replies}/$1.status")"\n'
    )
    (bin_dir / "pulumi").chmod(0o755)

    def run(refresh: tuple[str, int], preview: tuple[str, int]) -> tuple[subprocess.CompletedProcess, Path]:
        for command, (output, status) in (("refresh", refresh), ("preview", preview)):
            (replies / f"{command}.out").write_text(output)
            (replies / f"{command}.status").write_text(str(status))
        out = tmp_path / "out"
        env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "PYTHON": sys.executable}
        result = subprocess.run(
            ["bash", str(SCRIPT), STACK, str(out)], cwd=REPO_ROOT, env=env, capture_output=True, text=True
        )
        return result, out

    run.calls = calls
    return run


def test_the_script_runs_a_refresh_preview_and_a_preview_that_expects_no_changes(fake_pulumi):
    result, out = fake_pulumi(CLEAN, CLEAN)
    assert result.returncode == 0, result.stderr
    calls = fake_pulumi.calls.read_text().splitlines()
    assert calls == [
        f"refresh --stack {STACK} --preview-only --json --non-interactive",
        f"preview --stack {STACK} --expect-no-changes --json --non-interactive",
    ]
    assert (out / "verdict").read_text() == "clean\n"
    assert "no changes" in (out / "report.md").read_text()


@pytest.mark.parametrize(("refresh", "preview"), [(REFRESH_DRIFT, CLEAN), (CLEAN, PREVIEW_DRIFT)])
def test_either_check_finding_changes_is_drift_and_names_the_resource(fake_pulumi, refresh, preview):
    result, out = fake_pulumi(refresh, preview)
    assert result.returncode == 0, result.stderr  # drift goes to the issue, not to a failed job
    assert (out / "verdict").read_text() == "drift\n"
    report = (out / "report.md").read_text()
    assert report.startswith(f"### `{STACK}`: drift") and "**1 to update**" in report and URN in report


def test_a_check_that_cannot_run_is_an_error_not_clean(fake_pulumi):
    result, out = fake_pulumi(BROKEN, CLEAN)
    assert result.returncode != 0
    assert (out / "verdict").read_text() == "error\n"
    assert "could not run" in (out / "report.md").read_text()
    assert "stand-in stderr of refresh" in (out / "report.md").read_text()


def test_a_failing_preview_without_changes_is_an_error(tmp_path):
    (tmp_path / "refresh.json").write_text(CLEAN[0])
    (tmp_path / "preview.json").write_text(CLEAN[0])
    (tmp_path / "preview.err").write_text("error: the program failed\n")
    args = ["--stack", "dev", "--out", str(tmp_path), "--refresh-status", "0", "--preview-status", "255"]
    assert drift_main(args) == 1
    assert (tmp_path / "verdict").read_text() == "error\n"
    assert "the program failed" in (tmp_path / "report.md").read_text()


def test_drift_is_still_reported_when_the_other_check_could_not_run(tmp_path):
    (tmp_path / "refresh.json").write_text("not json")
    (tmp_path / "preview.json").write_text(PREVIEW_DRIFT[0])
    args = ["--stack", "dev", "--out", str(tmp_path), "--refresh-status", "255", "--preview-status", "255"]
    assert drift_main(args) == 1  # the job fails: one check did not run
    assert (tmp_path / "verdict").read_text() == "drift\n"  # and the issue still hears about the drift


# The workflow's github-script, run under node with a stand-in `github` client and `context`.
HARNESS = """
const fs = require("fs");
const scenario = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const calls = [];
const github = {
  paginate: async (fn, params) => { calls.push(["list", params.state]); return scenario.issues; },
  rest: { issues: {
    listForRepo: "listForRepo",
    create: async (p) => { calls.push(["create", p.title, p.body]); return { data: { number: 99 } }; },
    update: async (p) => { calls.push(["update", p.issue_number, p.state || null, p.body || null]); },
    createComment: async (p) => { calls.push(["comment", p.issue_number, p.body]); },
  } },
};
const context = { repo: { owner: "acme", repo: "edge" }, runId: 7, serverUrl: "https://github.com" };
const script = fs.readFileSync(process.argv[3], "utf8");
const run = new Function("require", "github", "context", "process",
                         `return (async () => { ${script} })();`);
run(require, github, context, process).then(() => console.log(JSON.stringify(calls)));
"""


@pytest.fixture
def drift_issue_script(tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    workflow = yaml.safe_load(WORKFLOW.read_text())
    (step,) = [
        s
        for s in workflow["jobs"]["report"]["steps"]
        if s.get("uses", "").startswith("actions/github-script@")
    ]
    script = tmp_path / "script.js"
    script.write_text(step["with"]["script"])
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS)

    def run(verdicts: dict[str, str | None], issues: list[dict]) -> list[list]:
        drift_dir = tmp_path / "drift"
        for stack, verdict in verdicts.items():
            folder = drift_dir / f"drift-{stack}"
            folder.mkdir(parents=True, exist_ok=True)
            if verdict is not None:  # None: the stack's check job left no artifact
                (folder / "verdict").write_text(verdict + "\n")
                (folder / "report.md").write_text(f"### `{stack}`: {verdict}\n")
        scenario = tmp_path / "scenario.json"
        scenario.write_text(json.dumps({"issues": issues}))
        env = {**os.environ, "DRIFT_DIR": str(drift_dir), "STACKS": step["env"]["STACKS"]}
        result = subprocess.run(
            [node, str(harness), str(scenario), str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    return run


MARKED = {"number": 12, "body": "<!-- steadytext-edge drift -->\nold report"}
UNRELATED = {"number": 3, "body": "a bug report"}


def test_drift_opens_one_issue_with_every_stacks_report(drift_issue_script):
    calls = drift_issue_script({"dev": "clean", "prod": "drift"}, [UNRELATED])
    writes = [call for call in calls if call[0] != "list"]
    assert len(writes) == 1 and writes[0][0] == "create"
    body = writes[0][2]
    assert body.startswith("<!-- steadytext-edge drift -->") and "**prod**" in body
    assert "### `dev`: clean" in body and "### `prod`: drift" in body
    assert "https://github.com/acme/edge/actions/runs/7" in body


def test_drift_again_updates_the_open_issue_instead_of_opening_another(drift_issue_script):
    calls = drift_issue_script({"dev": "drift", "prod": "drift"}, [UNRELATED, MARKED])
    assert not [call for call in calls if call[0] == "create"]
    (update,) = [call for call in calls if call[0] == "update"]
    assert update[1] == 12 and "**dev, prod**" in update[3]
    assert [call[1] for call in calls if call[0] == "comment"] == [12]


def test_the_issue_is_closed_once_every_stack_is_clean(drift_issue_script):
    calls = drift_issue_script({"dev": "clean", "prod": "clean"}, [MARKED])
    assert ["update", 12, "closed", None] in calls
    assert not [call for call in calls if call[0] == "create"]


@pytest.mark.parametrize("verdicts", [{"dev": "clean", "prod": None}, {"dev": "clean", "prod": "error"}])
def test_a_stack_that_was_not_checked_neither_closes_nor_opens_the_issue(drift_issue_script, verdicts):
    calls = drift_issue_script(verdicts, [MARKED])
    assert [call for call in calls if call[0] != "list"] == []


def test_nothing_is_written_when_all_is_clean_and_no_issue_is_open(drift_issue_script):
    assert [
        call for call in drift_issue_script({"dev": "clean", "prod": "clean"}, []) if call[0] != "list"
    ] == []


def test_the_workflow_checks_both_stacks_daily_and_only_the_report_job_may_write_issues():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow[True]["schedule"] and "workflow_dispatch" in workflow[True]  # `on:` parses as True
    check, report = workflow["jobs"]["check"], workflow["jobs"]["report"]
    assert check["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    assert "drift.sh" in " ".join(step.get("run", "") for step in check["steps"])
    assert "issues" not in check["permissions"] and report["permissions"]["issues"] == "write"
    assert workflow["permissions"] == {"contents": "read"}
    assert report["needs"] == "check" and report["if"] == "${{ !cancelled() }}"
