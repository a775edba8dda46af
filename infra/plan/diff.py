"""What differs between two plans (two stacks, or a saved plan and the working tree)."""

from __future__ import annotations

from typing import Any

DIFF_FORMAT = "steadytext-edge-plan-diff/1"


def flatten(value: Any, path: str = "") -> dict[str, Any]:
    """Dotted paths to leaves (`bindings[2].name`); empty containers are leaves too."""
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(flatten(item, f"{path}.{key}" if path else key))
        return flat
    if isinstance(value, list) and value:
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f"{path}[{index}]"))
        return flat
    return {path: value}


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    old, new = flatten(before), flatten(after)
    return [
        {"path": path, "before": old.get(path), "after": new.get(path)}
        for path in sorted(old.keys() | new.keys())
        if old.get(path) != new.get(path) or (path in old) != (path in new)
    ]


def resource_changes(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    found = changes(before["properties"], after["properties"])
    if before["protect"] != after["protect"]:
        found.insert(0, {"path": "(protect)", "before": before["protect"], "after": after["protect"]})
    return found


def label(plan: dict[str, Any]) -> str:
    return plan.get("label") or f"stack {plan['stack']}"


def diff_plans(base: dict[str, Any], head: dict[str, Any]) -> dict[str, Any]:
    """`base` → `head`: resources added, removed and changed (by key), and output changes."""
    old = {r["key"]: r for r in base["resources"]}
    new = {r["key"]: r for r in head["resources"]}
    changed = []
    for key in sorted(old.keys() & new.keys()):
        found = resource_changes(old[key], new[key])
        if found:
            changed.append({"key": key, "type": new[key]["type"], "name": new[key]["name"], "changes": found})
    return {
        "format": DIFF_FORMAT,
        "base": label(base),
        "head": label(head),
        "added": [new[key] for key in sorted(new.keys() - old.keys())],
        "removed": [old[key] for key in sorted(old.keys() - new.keys())],
        "changed": changed,
        "unchanged": len(old.keys() & new.keys()) - len(changed),
        "outputs": changes(base["outputs"], head["outputs"]),
    }
