"""`make lint`: every linter issue 12 asks for runs, over every file of its kind, and CI runs it first."""

from __future__ import annotations

import subprocess

from infra import REPO_ROOT


def lint_recipe() -> str:
    """What `make lint` would run (`-n`: printed, nothing executed; setup's steps print only if stale)."""
    result = subprocess.run(
        ["make", "-n", "lint"], cwd=REPO_ROOT, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


def tracked(*patterns: str) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", *patterns], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    return listed.stdout.split()


def test_make_lint_runs_each_linter():
    recipe = lint_recipe()
    for command in (
        "ruff check runtime infra pulumi_offline tests bench scripts container",
        "ruff format --check runtime infra pulumi_offline tests bench scripts container",
        "npx tsc --noEmit && npx tsc --noEmit -p test",
        "npx prettier --check .",
        "hadolint container/",
        "bin/actionlint",
        "shellcheck ",
    ):
        assert command in recipe, command


def test_every_python_folder_is_linted_and_format_checked():
    top_level = {path.split("/", 1)[0] for path in tracked("*.py") if "/" in path}
    for command in ("bin/ruff check ", "bin/ruff format --check "):
        (line,) = [line for line in lint_recipe().splitlines() if command in line]
        linted = set(line.split(command, 1)[1].split())
        assert top_level <= linted, (command, top_level - linted)


def test_every_shell_script_and_dockerfile_is_linted():
    (shellcheck,) = [line for line in lint_recipe().splitlines() if "bin/shellcheck " in line]
    assert set(tracked("*.sh")) <= set(shellcheck.split()[1:])
    (hadolint,) = [line for line in lint_recipe().splitlines() if "bin/hadolint " in line]
    linted = {path.name for path in REPO_ROOT.glob(hadolint.split()[-1])}
    assert {path.rsplit("/", 1)[-1] for path in tracked("*Dockerfile*")} <= linted


def test_ci_lints_before_it_tests():
    commands = [
        line.strip()
        for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith("make ")
    ]
    assert commands == ["make lint", "make test"]
