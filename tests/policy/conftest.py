"""Builders for policy unit tests: resources as plain dicts of the provider's input properties
(camelCase, as the engine sends them), run through the same evaluator the offline plan uses."""

from __future__ import annotations

from typing import Any

from pulumi_policy import Policy

from infra.policy.evaluate import Declared, run_policies

STACK_URN_PREFIX = "urn:pulumi:prod::steadytext-edge::"


def res(
    type_: str,
    name: str,
    props: dict[str, Any] | None = None,
    *,
    protect: bool = False,
    deps: dict[str, list[Declared]] | None = None,
) -> Declared:
    """A declared resource; `deps` maps a property to the resources whose outputs flow into it."""
    return Declared(
        urn=f"{STACK_URN_PREFIX}{type_}::{name}",
        type=type_,
        name=name,
        props=props or {},
        protect=protect,
        property_dependencies={prop: [d.urn for d in found] for prop, found in (deps or {}).items()},
    )


def violations(policy: Policy, *resources: Declared, config: dict[str, Any] | None = None) -> list[str]:
    """Messages `policy` reports over `resources` (its config given as the policy-pack config entry)."""
    pack_config = {policy.name: config} if config else {}
    return [v.message for v in run_policies(resources, [policy], pack_config)]
