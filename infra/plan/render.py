"""Plain-text views of a plan, a plan diff and policy results (for terminals and PR comments)."""

from __future__ import annotations

import json
from typing import Any

from infra.plan.diff import flatten
from infra.plan.inventory import SECRET
from infra.policy.evaluate import Violation

SHOWN_VALUE = 100  # characters of one value shown on a line


def value_text(value: Any) -> str:
    text = value if isinstance(value, str) and value.startswith(SECRET) else json.dumps(value, sort_keys=True)
    return text if len(text) <= SHOWN_VALUE else text[: SHOWN_VALUE - 1] + "…"


def resource_heading(resource: dict[str, Any]) -> str:
    flags = [
        flag for flag, on in (("protected", resource["protect"]), ("component", not resource["custom"])) if on
    ]
    return f"{resource['type']}  {resource['name']}" + (f"  [{', '.join(flags)}]" if flags else "")


def render_plan(plan: dict[str, Any]) -> str:
    resources = plan["resources"]
    protected = sum(1 for r in resources if r["protect"])
    lines = [
        f"Plan for stack {plan['stack']} (project {plan['project']}): {len(resources)} resources, "
        f"{protected} protected, {len(plan['outputs'])} outputs",
        "",
    ]
    for resource in resources:
        lines.append(resource_heading(resource))
        if resource["parent"]:
            lines.append(f"    parent: {resource['parent']}")
        lines += [
            f"    {path} = {value_text(value)}"
            for path, value in flatten(resource["properties"]).items()
            if path
        ]
    lines += ["", "Outputs:"] + [
        f"    {name} = {value_text(value)}" for name, value in plan["outputs"].items()
    ]
    return "\n".join(lines) + "\n"


def render_diff(diff: dict[str, Any]) -> str:
    lines = [
        f"Plan diff: {diff['base']} → {diff['head']}: {len(diff['added'])} added, "
        f"{len(diff['removed'])} removed, {len(diff['changed'])} changed, {diff['unchanged']} unchanged",
        "",
    ]
    lines += [f"+ {resource_heading(r)}" for r in diff["added"]]
    lines += [f"- {resource_heading(r)}" for r in diff["removed"]]
    for resource in diff["changed"]:
        lines.append(f"~ {resource['type']}  {resource['name']}")
        lines += [
            f"    {c['path']}: {value_text(c['before'])} → {value_text(c['after'])}"
            for c in resource["changes"]
        ]
    if diff["outputs"]:
        lines += ["", "Outputs:"]
        lines += [
            f"~   {c['path']}: {value_text(c['before'])} → {value_text(c['after'])}" for c in diff["outputs"]
        ]
    return "\n".join(lines) + "\n"


def render_violations(violations: list[Violation], level: str) -> str:
    blocking = sum(1 for v in violations if v.blocking)
    lines = [f"Policy pack ({level}): {len(violations)} violation(s), {blocking} blocking"]
    lines += [
        f"  [{v.level}] {v.policy}: {v.message}" + (f"\n      at {v.urn}" if v.urn else "")
        for v in violations
    ]
    return "\n".join(lines) + "\n"
