"""The program uses pulumi-cloudflare 6.x names only: none of the classes the SDK deprecates (each
deprecated class's docstring names its replacement), and none of the deprecated arguments."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pulumi_cloudflare

from infra import REPO_ROOT
from pulumi_offline import plain
from tests import python_source

DEPRECATION = re.compile(r"cloudflare\.index/\w+\.(\w+) has been deprecated in favor of")
# Deprecated arguments of the classes the program does use (SDK docstrings).
DEPRECATED_ARGUMENTS = {"entries", "self_hosted_domains", "logpull_options", "frequency", "environment"}


def deprecated_classes() -> set[str]:
    package = Path(pulumi_cloudflare.__file__).parent
    return {name for source in package.glob("*.py") for name in DEPRECATION.findall(source.read_text())}


def cloudflare_calls(tree: ast.AST):
    """(class name, keyword names) for every `cf.X(...)` / `pulumi_cloudflare.X(...)` call."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id in ("cf", "pulumi_cloudflare")
        ):
            yield node.func.attr, {kw.arg for kw in node.keywords}


def test_the_sdk_deprecations_are_found():
    # The scan below is only as good as this list: it must hold the 5.x → 6.x renames the SDK announces.
    assert {
        "WorkerScript",
        "WorkerDomain",
        "Tunnel",
        "TunnelConfig",
        "AccessApplication",
        "AccessPolicy",
        "AccessServiceToken",
        "DlpCustomProfile",
        "TeamsRule",
        "Record",
    } <= deprecated_classes()


def test_infra_uses_no_deprecated_class_or_argument():
    deprecated = deprecated_classes()
    offenders = []
    for source in sorted((REPO_ROOT / "infra").rglob("*.py")):
        tree = python_source.parse(source.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "pulumi_cloudflare":
                offenders += [f"{source.name}: import {a.name}" for a in node.names if a.name in deprecated]
        for name, keywords in cloudflare_calls(tree):
            if name in deprecated:
                offenders.append(f"{source.name}: cf.{name}")
            offenders += [f"{source.name}: cf.{name}({kw}=...)" for kw in keywords & DEPRECATED_ARGUMENTS]
    assert offenders == []


def test_the_declared_resources_are_current_types(stack_run):
    deprecated = deprecated_classes()
    used = {r.type.rsplit(":", 1)[1] for r in stack_run.resources if r.type.startswith("cloudflare:")}
    assert used and not used & deprecated


def deprecated_nested_arguments() -> dict[str, set[str]]:
    """Input-type class name (e.g. `ZeroTrustDlpCustomEntryPattern`) → its deprecated fields, camelCase."""
    source = (Path(pulumi_cloudflare.__file__).parent / "_inputs.py").read_text()
    found: dict[str, set[str]] = {}
    for block in re.split(r"\n(?=class )", source):
        name = re.match(r"class (\w+)Args\b", block)
        fields = re.findall(r"@_utilities\.deprecated\([^)]*\)\n\s+def (\w+)", block)
        if name and fields:
            found[name.group(1)] = {re.sub(r"_(\w)", lambda m: m.group(1).upper(), f) for f in fields}
    return found


def keys_anywhere(value) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {key for item in value.values() for key in keys_anywhere(item)}
    if isinstance(value, list):
        return {key for item in value for key in keys_anywhere(item)}
    return set()


def test_the_sdk_nested_deprecations_are_found():
    assert "validation" in deprecated_nested_arguments()["ZeroTrustDlpCustomEntryPattern"]


def test_no_deprecated_nested_argument_is_sent(stack_run, choices_run):
    deprecated = deprecated_nested_arguments()
    offenders = []
    for run in (stack_run, choices_run):
        for resource in run.resources:
            if not resource.type.startswith("cloudflare:"):
                continue
            kind = resource.type.rsplit(":", 1)[1]
            names = set().union(*(fields for cls, fields in deprecated.items() if cls.startswith(kind)))
            nested = keys_anywhere([value for value in plain(resource.inputs).values()])
            offenders += [f"{resource.name}: {name}" for name in sorted(names & nested)]
    assert offenders == []
