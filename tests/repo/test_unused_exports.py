"""Every name a Worker module exports is imported somewhere else (another module, a test, the bench):
an export nobody imports is dead API that `tsc --noUnusedLocals` cannot see. Python has no exports;
ruff (F401, F811, F841) and the unused-locals check of tsc cover the rest."""

from __future__ import annotations

import re
from pathlib import Path

EDGE = Path(__file__).resolve().parents[2] / "edge"
EXPORT = re.compile(
    r"^export (?:declare )?(?:async )?(?:function\*?|const|let|class|type|interface|enum) (\w+)", re.M
)


def edge_sources() -> dict[Path, str]:
    folders = ("src", "test", "bench", "scripts")
    return {
        path: path.read_text()
        for folder in folders
        for path in sorted((EDGE / folder).rglob("*"))
        if path.suffix in {".ts", ".mts", ".mjs"}
    }


def unused_exports(sources: dict[Path, str], modules: list[Path]) -> list[str]:
    unused = []
    for module in modules:
        for name in EXPORT.findall(sources[module]):
            word = re.compile(rf"\b{name}\b")
            if not any(word.search(text) for path, text in sources.items() if path != module):
                unused.append(f"{module.relative_to(EDGE)}: {name}")
    return unused


def test_the_scan_finds_an_export_nobody_imports():
    a, b = Path("src/a.ts"), Path("src/b.ts")
    sources = {a: "export const USED = 1;\nexport function unused() {}\n", b: "import { USED } from './a';"}
    assert unused_exports({EDGE / p: t for p, t in sources.items()}, [EDGE / a]) == ["src/a.ts: unused"]


def test_every_worker_export_is_imported_somewhere():
    sources = edge_sources()
    modules = [path for path in sources if path.parent == EDGE / "src" or EDGE / "src" in path.parents]
    assert unused_exports(sources, modules) == []
