"""The plan itself: every registered resource and stack output as deterministic, JSON-ready data with
secrets masked."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import rpc

from infra import REPO_ROOT
from pulumi_offline import PulumiRun, plain

PLAN_FORMAT = "steadytext-edge-plan/1"
SECRET = "[secret]"
STACK_TYPE = "pulumi:pulumi:Stack"
# Longer strings (bundled Worker source, policy documents) are shown as a digest: still diffable.
LONG_STRING = 200
# Absolute paths differ between checkouts (a PR's plan vs. its base branch's): shown relative instead.
PATH_PREFIXES = ((f"{REPO_ROOT}/", ""), (f"{Path.home()}/", "~/"))


def resource_key(urn: str) -> str:
    """`<parent types>$<type>::<name>`: the URN without stack and project, equal across stacks."""
    return urn.split("::", 2)[2]


def leaves_of(value: Any) -> set[str]:
    """Every non-empty leaf of a resolved value, as text."""
    if isinstance(value, dict):
        return set().union(*(leaves_of(item) for item in value.values()))
    if isinstance(value, list | tuple):
        return set().union(*(leaves_of(item) for item in value))
    return set() if value in (None, "") else {str(value)}


class Masker:
    """Turns a recorded value into plan data: secret wrappers and any string holding a known secret
    value become `[secret]` (a secret that reached a plain property is still never printed).

    Pulumi lifts secretness to the whole property (a Worker's `bindings` list holding one secret is one
    secret), so a secret list or object is shown as `[secret]#<digest>`: a change to its plain parts
    still shows in a diff. The plan only ever holds stand-in secrets (stack files carry none), so the
    digest reveals nothing real.
    """

    def __init__(self, secret_values: Iterable[str]):
        self._secrets = sorted({s for s in secret_values if s}, key=len, reverse=True)

    def __call__(self, value: Any) -> Any:
        if rpc.is_rpc_secret(value):
            inner = plain(value)
            if not isinstance(inner, dict | list):
                return SECRET
            # Over the masked form: known secret values and checkout paths do not move the digest.
            digest = hashlib.sha256(json.dumps(self(inner), sort_keys=True).encode()).hexdigest()
            return f"{SECRET}#{digest[:12]}"
        if isinstance(value, dict):
            return {key: self(item) for key, item in sorted(value.items())}
        if isinstance(value, list | tuple):
            return [self(item) for item in value]
        if isinstance(value, str):
            return self._string(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)  # protobuf carries every number as a double
        if value is None or isinstance(value, bool | int | float):
            return value
        return self._string(_describe(value))

    def _string(self, value: str) -> str:
        if any(secret in value for secret in self._secrets):
            return SECRET
        for prefix, replacement in PATH_PREFIXES:
            if value.startswith(prefix):
                value = replacement + value[len(prefix) :]
        if len(value) > LONG_STRING:
            return f"<{len(value)} chars, sha256:{hashlib.sha256(value.encode()).hexdigest()[:16]}>"
        return value


def _describe(value: Any) -> str:
    """Assets and archives by what they point at (never a memory address)."""
    for attribute in ("path", "uri", "text"):
        if isinstance(value, pulumi.Asset | pulumi.Archive) and getattr(value, attribute, None):
            return f"{type(value).__name__}({getattr(value, attribute)})"
    if isinstance(value, pulumi.AssetArchive):
        return f"AssetArchive({', '.join(sorted(value.assets))})"
    return type(value).__name__


def build_plan(project: str, stack: str, run: PulumiRun, config_secrets: Iterable[str]) -> dict[str, Any]:
    # Secret wrappers mask whole properties (Pulumi lifts secretness to the top-level property, so their
    # leaves include plain names); by value, the config secrets and the secret outputs are masked anywhere.
    secrets = set(config_secrets)
    for name in run.secret_outputs:
        secrets |= leaves_of(run.outputs[name])
    mask = Masker(secrets)
    resources = [
        {
            "key": resource_key(r.urn),
            "type": r.type,
            "name": r.name,
            "parent": None
            if not r.parent or resource_key(r.parent).startswith(STACK_TYPE)
            else resource_key(r.parent),
            "custom": r.custom,
            "protect": r.protect,
            "properties": mask(r.inputs),
        }
        for r in run.resources
    ]
    outputs = {
        name: SECRET if name in run.secret_outputs else mask(value) for name, value in run.outputs.items()
    }
    return {
        "format": PLAN_FORMAT,
        "project": project,
        "stack": stack,
        "resources": sorted(resources, key=lambda r: r["key"]),
        "outputs": dict(sorted(outputs.items())),
    }
