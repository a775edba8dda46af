"""`dlp-patterns.json`: the one definition of what the Worker blocks or redacts, reused for the
Zero Trust DLP profile so the edge and Gateway enforce the same patterns."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from infra import REPO_ROOT

DLP_PATTERNS = REPO_ROOT / "dlp-patterns.json"
VALIDATIONS = (None, "luhn")
# Cloudflare DLP compiles entries with Rust's `regex`, which has no look-around or back-references.
_UNSUPPORTED = re.compile(r"\(\?<?[=!]|\\[1-9]|\\k<")


class DlpPatternError(ValueError):
    pass


@dataclass(frozen=True)
class DlpPattern:
    id: str
    name: str
    regex: str
    validation: str | None


def _pattern(path: Path, entry: object) -> DlpPattern:
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("id", "name", "regex")):
        raise DlpPatternError(f"{path}: every pattern needs string id, name and regex, got {entry!r}")
    if entry.get("validation") not in VALIDATIONS:
        raise DlpPatternError(f'{path}: pattern {entry["id"]}: validation must be null or "luhn"')
    if _UNSUPPORTED.search(entry["regex"]):
        raise DlpPatternError(
            f"{path}: pattern {entry['id']}: Cloudflare DLP supports no look-around and back-references"
        )
    try:
        re.compile(entry["regex"])
    except re.error as error:
        raise DlpPatternError(f"{path}: pattern {entry['id']}: invalid regex: {error}") from None
    return DlpPattern(entry["id"], entry["name"], entry["regex"], entry.get("validation"))


def load_dlp_patterns(path: Path = DLP_PATTERNS) -> tuple[DlpPattern, ...]:
    try:
        document = json.loads(path.read_text())
    except ValueError as error:
        raise DlpPatternError(f"{path} is not valid JSON: {error}") from None
    patterns = document.get("patterns") if isinstance(document, dict) else None
    if not isinstance(patterns, list) or not patterns:
        raise DlpPatternError(f'{path}: expected {{"patterns": [...]}} with at least one pattern')
    return tuple(_pattern(path, entry) for entry in patterns)
