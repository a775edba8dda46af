"""Every repository path the prose mentions exists: docs/*.md, README.md and the comments and docstrings
of the code name files and folders, and a rename or a deletion must not leave them pointing nowhere.

A mention is a path-looking token (`infra/plan/`, `docs/runtime.md`, `../container/Dockerfile.cuda`,
`[x](docs/edge.md)`) whose first folder is one of the repository's own top-level folders, or that ends in a
file suffix. It may be written relative to the repository root, to the mentioning file's folder or to
`edge/` (the Worker's own docs and comments speak from there); paths git ignores (`.local/…`, `dist/`,
`node_modules/…`) are outputs of a run and are not checked, nor are patterns with a placeholder folder
(`OUT_DIR/report.md`, `migrations/NNNN_name.sql`). Paths outside this repository (another project's
source, an object key in a bucket) are listed in ELSEWHERE with where they live."""

from __future__ import annotations

import ast
import io
import re
import subprocess
import tokenize
from functools import cache
from pathlib import Path

from tests import python_source

REPO = Path(__file__).resolve().parents[2]

# Paths that comments cite which are not this repository's files, and where they are.
ELSEWHERE = {
    "d1/migrations/helpers.ts": "cloudflare/workers-sdk, wrangler's D1 migration helpers",
    "logs/challenge-filename.txt": "the Logpush ownership-challenge object key in the destination bucket",
}

SUFFIXES = (
    "md|py|ts|mts|mjs|js|json|jsonc|sql|yaml|yml|toml|sh|txt|cfg|ini|sql|gguf|lock|d\\.ts|example|cpu|cuda"
)
PATH_TOKEN = re.compile(
    r"(?<![\w./:@~$<>{}*-])"  # not the tail of a longer word, URL, home path, variable or placeholder
    r"((?:\.\.?/)*(?:[\w.-]+/)+[\w.-]*)"  # at least one folder
    r"(?![\w/<>{}*(])"
)
# A folder or name prefix in capitals stands for a value (`$OUT_DIR/…`, `NNNN_name.sql`), not a path.
PLACEHOLDER = re.compile(r"(?:^|/)[A-Z][A-Z_]*(?:/|_)")
CODE_SUFFIXES = {".py", ".ts", ".mts", ".mjs", ".js", ".jsonc", ".yaml", ".yml", ".toml", ".sh", ".sql"}
CODE_NAMES = {"Makefile", "Dockerfile.cpu", "Dockerfile.cuda", ".dockerignore", ".gitignore", "run"}


@cache
def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    return [line for line in listed.stdout.splitlines() if (REPO / line).is_file()]


@cache
def top_level_folders() -> frozenset[str]:
    return frozenset(path.split("/", 1)[0] for path in tracked_files() if "/" in path)


def ignored(path: Path, as_folder: bool = False) -> bool:
    """True when git ignores `path` (a run's output, a dependency folder): nothing to keep in sync.
    `as_folder` asks about a folder that does not exist yet (git matches `dir/` patterns only to folders)."""
    try:
        relative = path.resolve().relative_to(REPO)
    except ValueError:
        return False
    name = f"{relative}/" if as_folder else str(relative)
    return subprocess.run(["git", "check-ignore", "-q", name], cwd=REPO).returncode == 0


def python_prose(text: str) -> str:
    """The comments and docstrings of a Python file."""
    parts = [
        tok.string
        for tok in tokenize.generate_tokens(io.StringIO(text).readline)
        if tok.type == tokenize.COMMENT
    ]
    for node in ast.walk(python_source.parse(text)):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            parts.append(ast.get_docstring(node, clean=False) or "")
    return "\n".join(parts)


def slash_prose(text: str) -> str:
    """The `//` and `/* */` comments of a TypeScript/JavaScript/JSONC file (a `//` inside a string is rare
    enough here: URLs are filtered by PATH_TOKEN anyway)."""
    return "\n".join(re.findall(r"//[^\n]*|/\*.*?\*/", text, re.DOTALL))


def hash_prose(text: str) -> str:
    return "\n".join(re.findall(r"#[^\n]*", text))


def prose_of(path: str) -> str | None:
    """The part of a tracked file that is prose, or None for files that are not docs or code."""
    file = REPO / path
    text = file.read_text(errors="replace")
    if path == "README.md" or (path.startswith("docs/") and path.endswith(".md")):
        return text
    if file.suffix == ".py":
        return python_prose(text)
    if file.suffix in {".ts", ".mts", ".mjs", ".js", ".jsonc"}:
        return slash_prose(text)
    if file.suffix in CODE_SUFFIXES or file.name in CODE_NAMES:
        return hash_prose(text) if file.suffix != ".sql" else "\n".join(re.findall(r"--[^\n]*", text))
    return None


def mentions(prose: str) -> set[str]:
    found = set()
    for token in PATH_TOKEN.findall(prose):
        token = token.rstrip(".,;:")
        first = token.lstrip("./").split("/", 1)[0]
        if PLACEHOLDER.search(token):
            continue
        if first in top_level_folders() or re.search(rf"\.(?:{SUFFIXES})$", token):
            found.add(token)
    return found


def resolves(mention: str, mentioned_in: str) -> bool:
    if mention in ELSEWHERE:
        return True
    bases = [REPO, (REPO / mentioned_in).parent, REPO / "edge"]
    for base in bases:
        candidate = base / mention
        if candidate.exists() or ignored(candidate) or ignored(candidate, as_folder=True):
            return True
    return False


@cache
def documented_files() -> list[str]:
    # A migration is never edited once written (a deployed database records its digest), so the paths its
    # comments name are the ones of the day it was written.
    return [
        path for path in tracked_files() if not path.startswith(("edge/worker-configuration", "migrations/"))
    ]


def test_the_scan_finds_the_mentions_it_is_meant_to():
    """The checker itself: mentions are found in each kind of prose, a missing one is reported."""
    assert "docs/runtime.md" in mentions("see [the runtime](docs/runtime.md).")
    assert "infra/plan/" in mentions("`infra/plan/`, `https://example.com/infra/plan/x.md`")
    assert "reference/pulumi.md" in mentions("# notes: reference/pulumi.md")
    assert mentions("$OUT_DIR/report.md migrations/NNNN_name.sql") == set()
    assert (
        mentions("cloudflare/cloudflared:2025.11.1 linux/amd64 Pulumi.<stack>.yaml ~/.docker/config.json")
        == set()
    )
    assert "a/b.py" in mentions(python_prose('"""Docstring: a/b.py."""\nx = "c/d.py"  # e/f.py\n'))
    assert "c/d.py" not in mentions(python_prose('x = "c/d.py"\n'))
    assert resolves("docs/runtime.md", "README.md")
    assert resolves("../migrations", "edge/wrangler.jsonc")
    assert resolves(".local/logs/runtime.log", "README.md")  # ignored: a run's output
    assert not resolves("reference/pulumi.md", "README.md")
    assert not resolves("container/Dockerfile", "README.md")


def test_every_path_mentioned_exists():
    missing = [
        f"{path}: {mention}"
        for path in documented_files()
        if (prose := prose_of(path)) is not None
        for mention in sorted(mentions(prose))
        if not resolves(mention, path)
    ]
    assert not missing, "paths mentioned that do not exist:\n" + "\n".join(missing)
