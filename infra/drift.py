"""`python -m infra.drift --stack STACK --out DIR --refresh-status N --preview-status M`

Reads what .github/scripts/drift.sh left in DIR — the JSON of `pulumi refresh --preview-only` (does every
resource still look the way the state remembers it?) and of `pulumi preview --expect-no-changes` (would the
program change anything?) with their exit statuses — and writes DIR/verdict (`clean`, `drift` or `error`)
and DIR/report.md (the section the scheduled drift workflow puts into its one issue).

A check that proposes any operation other than `same` is drift, whatever its exit status (the preview's
`--expect-no-changes` makes drift exit non-zero too); a check that failed without proposing anything, or
whose output cannot be read, is an error: the stack was not checked, which is not the same as clean.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHECKS = {
    "refresh": "`pulumi refresh --preview-only`: resources changed outside Pulumi",
    "preview": "`pulumi preview --expect-no-changes`: the program and the state disagree",
}
UNCHANGED = {"same"}
MAX_LISTED = 50


@dataclass(frozen=True)
class CheckResult:
    name: str
    changes: dict[str, int]  # operation → resources
    resources: list[str]  # "op urn" of what would change, as far as the JSON lists it
    error: str | None


def read_check(name: str, out: Path, status: int) -> CheckResult:
    text = (out / f"{name}.json").read_text() if (out / f"{name}.json").is_file() else ""
    errors = (out / f"{name}.err").read_text().strip() if (out / f"{name}.err").is_file() else ""
    try:
        document: Any = json.loads(text)
    except json.JSONDecodeError:
        document = None
    if not isinstance(document, dict) or not isinstance(document.get("changeSummary"), dict):
        detail = errors or text.strip() or "no output"
        return CheckResult(name, {}, [], f"exit status {status}, no change summary: {detail[-2000:]}")
    changes = {op: count for op, count in document["changeSummary"].items() if op not in UNCHANGED and count}
    resources = [
        f"{step.get('op')} {step.get('urn')}"
        for step in document.get("steps") or []
        if step.get("op") not in (*UNCHANGED, "refresh", "read")
        or step.get("diffReasons")
        or step.get("detailedDiff")
    ]
    if not changes and status != 0:
        return CheckResult(name, {}, [], f"exit status {status}: {(errors or 'no error output')[-2000:]}")
    return CheckResult(name, changes, resources, None)


def verdict(results: list[CheckResult]) -> str:
    if any(result.changes for result in results):
        return "drift"
    return "error" if any(result.error for result in results) else "clean"


def report(stack: str, results: list[CheckResult]) -> str:
    lines = [f"### `{stack}`: {verdict(results)}", ""]
    for result in results:
        if result.error:
            lines.append(f"- {CHECKS[result.name]}: **could not run** ({result.error.splitlines()[0]})")
        elif not result.changes:
            lines.append(f"- {CHECKS[result.name]}: no changes")
        else:
            counts = ", ".join(f"{count} to {op}" for op, count in sorted(result.changes.items()))
            lines.append(f"- {CHECKS[result.name]}: **{counts}**")
            lines.extend(f"  - `{resource}`" for resource in result.resources[:MAX_LISTED])
            if len(result.resources) > MAX_LISTED:
                lines.append(f"  - … and {len(result.resources) - MAX_LISTED} more (see the run's artifact)")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.drift", description=__doc__.splitlines()[0])
    parser.add_argument("--stack", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--refresh-status", required=True, type=int)
    parser.add_argument("--preview-status", required=True, type=int)
    args = parser.parse_args(argv)
    results = [
        read_check("refresh", args.out, args.refresh_status),
        read_check("preview", args.out, args.preview_status),
    ]
    (args.out / "verdict").write_text(verdict(results) + "\n")
    (args.out / "report.md").write_text(report(args.stack, results))
    print(report(args.stack, results))
    # Drift is reported through the issue; a check that could not run also fails the job.
    return 1 if any(result.error for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
