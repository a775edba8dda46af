"""Runs the pack's policies in-process over declared resources, the way the Pulumi engine's analyzer does.

The offline plan feeds it the resources the program registered under mocks; the policy unit tests feed it
resources written as plain dicts. Either way the policies get real `pulumi_policy` argument objects with
unknown-checking property proxies, and per-policy config in the `--policy-pack-config` format.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pulumi_policy import (
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

PACK_DEFAULT_LEVEL = "mandatory"


@dataclass(frozen=True)
class Declared:
    """One registered resource: camelCase input properties (secrets as `pulumi_policy.Secret`), options,
    and which resources flow into which property (by URN)."""

    urn: str
    type: str
    name: str
    props: Mapping[str, Any]
    protect: bool = False
    parent: str | None = None
    property_dependencies: Mapping[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str
    message: str
    urn: str | None

    @property
    def blocking(self) -> bool:
        return self.level == "mandatory"


def _options(resource: Declared) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        resource.protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], resource.parent
    )


def policy_resources(declared: Iterable[Declared]) -> list[PolicyResource]:
    """`PolicyResource`s with parents and property dependencies resolved to each other, as in AnalyzeStack."""
    declared = list(declared)
    by_urn = {
        d.urn: PolicyResource(
            d.type, unknown_checking_proxy(dict(d.props)), d.urn, d.name, _options(d), None, None, [], {}
        )
        for d in declared
    }
    for d in declared:
        resource = by_urn[d.urn]
        resource.parent = by_urn.get(d.parent) if d.parent else None
        for prop, urns in d.property_dependencies.items():
            resource.property_dependencies[prop] = [by_urn[u] for u in urns if u in by_urn]
            resource.dependencies += [
                by_urn[u] for u in urns if u in by_urn and by_urn[u] not in resource.dependencies
            ]
    return list(by_urn.values())


def _settings(policy: Policy, config: Mapping[str, Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    entry = dict(config.get(policy.name, {}))
    return entry.pop("enforcementLevel", PACK_DEFAULT_LEVEL), entry


def run_policies(
    declared: Iterable[Declared],
    policies: Iterable[Policy],
    config: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[Violation]:
    resources = policy_resources(declared)
    violations: list[Violation] = []
    for policy in policies:
        level, settings = _settings(policy, config or {})
        if level == "disabled":
            continue

        def report(message: str, urn: str | None = None, *, _policy=policy, _level=level) -> None:
            violations.append(Violation(_policy.name, _level, message, urn))

        try:
            if isinstance(policy, StackValidationPolicy):
                policy.validate(StackValidationArgs(resources, settings), report)
            elif isinstance(policy, ResourceValidationPolicy):
                for resource in resources:
                    args = ResourceValidationArgs(
                        resource.resource_type,
                        resource.props,
                        resource.urn,
                        resource.name,
                        resource.opts,
                        None,
                        settings,
                    )
                    policy.validate(args, lambda message, _urn=None, urn=resource.urn: report(message, urn))
        except UnknownValueError as unknown:
            # What the engine does in a preview: the policy cannot decide, say so without blocking.
            violations.append(Violation(policy.name, "advisory", f"could not run: {unknown.message}", None))
    return violations
