"""`dlp-patterns.json`: the one definition of what the Worker blocks or redacts, reused for the
Zero Trust DLP profile so the edge and Gateway enforce the same patterns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from infra import REPO_ROOT

DLP_PATTERNS = REPO_ROOT / "dlp-patterns.json"


@dataclass(frozen=True)
class DlpPattern:
    id: str
    name: str
    regex: str
    validation: str | None


def load_dlp_patterns(path: Path = DLP_PATTERNS) -> tuple[DlpPattern, ...]:
    document = json.loads(path.read_text())
    return tuple(
        DlpPattern(id=p["id"], name=p["name"], regex=p["regex"], validation=p.get("validation"))
        for p in document["patterns"]
    )
