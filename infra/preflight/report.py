"""The checklist: one line per check (✓ passed, ! warning, ✗ failed), each failure with its fix.

Exit codes: 0 when nothing failed (warnings allowed), 1 when a check failed; `__main__` uses 2 for usage
and config errors before any check runs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum


class Status(Enum):
    PASS = "✓"
    WARN = "!"
    FAIL = "✗"


@dataclass(frozen=True)
class Check:
    area: str  # "cloudflare", "aws", "time-bound"
    title: str  # what was checked, e.g. "API token permissions"
    status: Status
    detail: str  # what was found
    fix: str = ""  # what to do about it (failures and warnings)


def passed(area: str, title: str, detail: str) -> Check:
    return Check(area, title, Status.PASS, detail)


def warning(area: str, title: str, detail: str, fix: str) -> Check:
    return Check(area, title, Status.WARN, detail, fix)


def failed(area: str, title: str, detail: str, fix: str) -> Check:
    return Check(area, title, Status.FAIL, detail, fix)


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


# The checklist's sections, in the order they print.
AREAS = ("cloudflare", "aws", "time-bound")


def render(stack: str, checks: Iterable[Check]) -> str:
    checks = sorted(checks, key=lambda check: AREAS.index(check.area))
    lines = [f"preflight for stack {stack}"]
    area = None
    for check in checks:
        if check.area != area:
            area = check.area
            lines.append(f"\n{area}")
        lines.append(f"  {check.status.value} {check.title}: {check.detail}")
        if check.fix:
            lines.append(f"      fix: {check.fix}")
    counts = {status: sum(1 for c in checks if c.status is status) for status in Status}
    lines.append(
        f"\n{counts[Status.PASS]} passed, {counts[Status.WARN]} warning(s), {counts[Status.FAIL]} failed"
        + ("" if counts[Status.FAIL] else ": ready for `pulumi up`")
    )
    return "\n".join(lines) + "\n"


def exit_code(checks: Iterable[Check]) -> int:
    return EXIT_FAILED if any(check.status is Status.FAIL for check in checks) else EXIT_OK
