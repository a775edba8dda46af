"""The runtime image's build context as pulumi-docker-build sees it: which files, and their digest.

pulumi-docker-build decides whether to rebuild (a CUDA build and push, many minutes) from a digest of the
build context (`hashBuildContext` in provider/internal/context.go): the Dockerfile's bytes, then, for every
regular file or symlink the `.dockerignore` lets through (`<Dockerfile>.dockerignore` first, else
`<context>/.dockerignore`), its content, slash path and Go file-mode string, in walk order. This module
computes the same, with the `.dockerignore` rules of moby/patternmatcher (`*`, `?`, `**`, `!` exceptions,
last match wins, a pattern matching a parent directory matches everything below it), so tests can show which
edits rebuild the image. Character classes (`[...]`) and escapes are refused rather than approximated.

It also turns paths into what the program passes the provider: relative to the directory Pulumi runs the
program and its providers in (Pulumi.yaml's `main:`), which is the same in every checkout.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from infra import REPO_ROOT
from infra.config.stack_files import project_file

IGNORE_FILE = ".dockerignore"


def program_dir() -> Path:
    """Pulumi starts the program and its provider plugins in the `main:` directory (infra/)."""
    return (REPO_ROOT / project_file().get("main", ".")).resolve()


def program_relative(path: Path) -> str:
    """`path` as the docker-build provider should get it: relative to its working directory."""
    return Path(os.path.relpath(path, program_dir())).as_posix()


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool  # a `!` line: re-include what matches

    def matches(self, path: str) -> bool:
        """patternmatcher's `Pattern.match` for one slash path."""
        text = self.text
        if "*" not in text and "?" not in text:
            return path == text
        if text.startswith("**") and "*" not in text[2:] and "?" not in text[2:]:
            suffix = text[2:]  # "**/name": a suffix match, and "name" itself
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        if text.endswith("**") and "*" not in text[:-2] and "?" not in text[:-2]:
            return path.startswith(text[:-2])
        return re.fullmatch(_regex(text), path) is not None

    def matches_or_parent_matches(self, path: str) -> bool:
        if self.matches(path):
            return True
        parts = path.split("/")[:-1]
        return any(self.matches("/".join(parts[: index + 1])) for index in range(len(parts)))


def _regex(pattern: str) -> str:
    out, index = "", 0
    while index < len(pattern):
        char = pattern[index]
        if pattern.startswith("**", index):
            index += 2
            if pattern.startswith("/", index):
                index += 1
            out += ".*" if index >= len(pattern) else "(.*/)?"
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        index += 1
    return out


def parse_ignore_file(text: str) -> list[Pattern]:
    """moby/patternmatcher/ignorefile.ReadAll, then the matcher's own cleaning."""
    patterns = []
    for line in text.removeprefix("\ufeff").splitlines():
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        exclusion = line.startswith("!")
        if exclusion:
            line = line[1:].strip()
        if "[" in line or "]" in line or "\\" in line:
            raise ValueError(
                f"{IGNORE_FILE} pattern {line!r}: character classes and escapes are not supported here"
            )
        cleaned = os.path.normpath(line).lstrip("/") if line != "/" else line
        patterns.append(Pattern(cleaned, exclusion))
    return patterns


def ignore_patterns(context: Path, dockerfile: Path) -> list[Pattern]:
    """The patterns the build uses: `<Dockerfile>.dockerignore` if present, else the context's own."""
    for candidate in (dockerfile.with_name(dockerfile.name + IGNORE_FILE), context / IGNORE_FILE):
        if candidate.is_file():
            return parse_ignore_file(candidate.read_text())
    return []


def excluded(path: str, patterns: list[Pattern]) -> bool:
    """patternmatcher's `MatchesOrParentMatches`: the last pattern that matches decides."""
    matched = False
    for pattern in patterns:
        if pattern.exclusion != matched:
            continue  # only an exclusion can undo a match, only an inclusion can make one
        if pattern.matches_or_parent_matches(path):
            matched = not pattern.exclusion
    return matched


def _may_reinclude_below(directory: str, patterns: list[Pattern]) -> bool:
    """Whether some `!` pattern could match a path under an excluded `directory` (else the walk skips it)."""
    depth = directory.count("/") + 1
    for pattern in patterns:
        if not pattern.exclusion:
            continue
        if "**" in pattern.text:
            return True
        segments = pattern.text.split("/")
        if len(segments) > depth and Pattern("/".join(segments[:depth]), False).matches(directory):
            return True
    return False


def context_files(context: Path, patterns: list[Pattern]) -> list[str]:
    """Slash paths of the files the build sends, in fsutil's walk order (names sorted per directory)."""
    found: list[str] = []

    def walk(directory: Path, prefix: str) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            path = f"{prefix}{entry.name}"
            if entry.is_dir(follow_symlinks=False):
                if not excluded(path, patterns) or _may_reinclude_below(path, patterns):
                    walk(Path(entry.path), f"{path}/")
            elif (entry.is_file(follow_symlinks=False) or entry.is_symlink()) and not excluded(
                path, patterns
            ):
                found.append(path)

    walk(context, "")
    return found


def _go_mode(mode: int) -> str:
    """Go's `fs.FileMode.String()` for the regular files and symlinks a context holds."""
    text = stat.filemode(mode)
    return ("L" + text[1:]) if stat.S_ISLNK(mode) else text


def context_digest(context: Path, dockerfile: Path) -> str:
    """What pulumi-docker-build stores as the image's `contextHash` (a change means a rebuild)."""
    digest = hashlib.sha256(dockerfile.read_bytes())
    for path in context_files(context, ignore_patterns(context, dockerfile)):
        full = context / path
        try:
            digest.update(full.read_bytes())  # a symlink: what it points to
        except IsADirectoryError:
            continue
        digest.update(path.encode())
        digest.update(_go_mode(full.lstat().st_mode).encode())
    return digest.hexdigest()
