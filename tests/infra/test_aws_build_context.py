"""The runtime image's build context: an edit outside the image's inputs leaves the digest pulumi-docker-build
compares unchanged (no CUDA rebuild, push or GPU redeploy), an edit to an input changes it, and every file the
Dockerfiles copy is in the context."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from infra import REPO_ROOT
from infra.build_context import (
    context_digest,
    context_files,
    excluded,
    ignore_patterns,
    parse_ignore_file,
    program_relative,
)
from infra.dockerfile import CPU_DOCKERFILE, CUDA_DOCKERFILE, copied_sources

DOCKERFILES = [CUDA_DOCKERFILE, CPU_DOCKERFILE]


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A copy of the repository's tracked files plus what a working checkout also has lying around."""
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            cwd=REPO_ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    root = tmp_path / "checkout"
    for name in filter(None, tracked):
        source = REPO_ROOT / name
        if source.is_file():
            target = root / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for untracked in (
        ".git/HEAD",
        ".venv/bin/python",
        "edge/node_modules/x/index.js",
        ".local/state.db",
        "runtime/__pycache__/app.cpython-311.pyc",
    ):
        (root / untracked).parent.mkdir(parents=True, exist_ok=True)
        (root / untracked).write_text("untracked\n")
    return root


def digest(root: Path) -> str:
    return context_digest(root, root / "container" / "Dockerfile.cuda")


@pytest.mark.parametrize(
    "edit",
    [
        "README.md",
        "docs/infra-aws.md",
        "edge/src/index.ts",
        "tests/infra/test_aws_image.py",
        "infra/program.py",
        "Pulumi.prod.yaml",
        ".github/workflows/deploy.yml",
        "edge/node_modules/x/index.js",
        ".git/HEAD",
        "container/Dockerfile.cpu",
        "runtime/__pycache__/app.cpython-311.pyc",
        "a-new-local-file.txt",
        "runtime/__pycache__/new.cpython-311.pyc",
    ],
)
def test_edits_outside_the_image_inputs_leave_the_context_digest_unchanged(checkout, edit):
    before = digest(checkout)
    path = checkout / edit
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write("\n# an edit\n")
    assert digest(checkout) == before


@pytest.mark.parametrize(
    "edit",
    [
        "runtime/engine/engines.py",
        "runtime/a_new_module.py",
        "pyproject.toml",
        "constraints.txt",
        "container/entrypoint.sh",
        "container/healthcheck.py",
        "container/Dockerfile.cuda",
    ],
)
def test_edits_to_an_input_change_the_context_digest(checkout, edit):
    before = digest(checkout)
    with (checkout / edit).open("a") as handle:
        handle.write("\n# an edit\n")
    assert digest(checkout) != before


def test_a_mode_change_of_an_input_changes_the_digest(checkout):
    before = digest(checkout)
    (checkout / "container" / "entrypoint.sh").chmod(0o644)
    assert digest(checkout) != before


def test_the_real_checkout_sends_only_the_image_inputs():
    files = context_files(REPO_ROOT, ignore_patterns(REPO_ROOT, CUDA_DOCKERFILE))
    top = {name.split("/")[0] if not name.startswith("container/") else name for name in files}
    assert top == {
        "pyproject.toml",
        "constraints.txt",
        "runtime",
        "container/entrypoint.sh",
        "container/healthcheck.py",
        "contract",
    }
    assert [name for name in files if name.startswith("contract/")] == ["contract/errors.json"]
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc")]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_file_a_dockerfile_copies_is_in_the_context(dockerfile):
    patterns = ignore_patterns(REPO_ROOT, dockerfile)
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    sources = copied_sources(dockerfile)
    assert sources, f"{dockerfile.name} copies nothing from the context?"
    for source in sources:
        clean = source.rstrip("/").removeprefix("./")
        files = [name for name in tracked if name == clean or name.startswith(f"{clean}/")]
        assert files, f"{dockerfile.name} copies {source}, which is not in the repository"
        left_out = [name for name in files if excluded(name, patterns)]
        assert left_out == [], f"{dockerfile.name} copies {source} but .dockerignore leaves out {left_out}"


def test_no_dockerfile_specific_ignore_file_overrides_the_shared_one():
    """BuildKit prefers <Dockerfile>.dockerignore; one of those would silently replace the allow-list."""
    assert not list((REPO_ROOT / "container").glob("*.dockerignore"))
    assert (REPO_ROOT / ".dockerignore").is_file()


def test_the_ignore_rules_follow_dockers():
    """moby/patternmatcher: the last matching line wins, a match on a parent directory counts, `**` spans
    directories, and `!` re-includes."""
    patterns = parse_ignore_file("# comment\n*\n!runtime\n**/__pycache__\n!keep/**\nkeep/*.log\n/abs/x\n")
    assert [p.text for p in patterns] == ["*", "runtime", "**/__pycache__", "keep/**", "keep/*.log", "abs/x"]
    assert excluded("README.md", patterns) and excluded("edge/src/index.ts", patterns)
    assert not excluded("runtime/http/app.py", patterns)
    assert excluded("runtime/__pycache__/app.pyc", patterns) and excluded("__pycache__/x", patterns)
    assert not excluded("keep/a/b.txt", patterns) and excluded("keep/a.log", patterns)
    assert not excluded("keep/a/b.log", patterns)  # `*` does not cross a directory
    with pytest.raises(ValueError, match="character classes"):
        parse_ignore_file("[ab]*\n")


def test_paths_for_the_provider_are_relative_to_where_pulumi_runs_the_program():
    assert program_relative(REPO_ROOT) == ".."
    assert program_relative(CUDA_DOCKERFILE) == "../container/Dockerfile.cuda"
