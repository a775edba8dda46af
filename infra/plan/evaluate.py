"""One stack's plan: the program run under the mocks harness with the stack file's config.

Account ids the stack file leaves as REPLACE_WITH_… placeholders and every secret (stack files hold
none) get the harness's stand-in values, the secrets marked secret exactly as `pulumi config set
--secret` would mark them, so the program sees what a real deploy sees and the plan can prove that no
secret value reaches its output.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pulumi.runtime import rpc
from pulumi_policy import Secret

from infra import REPO_ROOT
from infra.plan.inventory import STACK_TYPE, build_plan
from infra.policy.evaluate import Declared
from infra.program import run as run_program
from infra.worker_bundle import WorkerBundle, build_worker_bundle
from pulumi_offline import PROJECT, TEST_SECRETS, PulumiRun, run_pulumi, stack_config


class PlanError(Exception):
    """Bad input to the plan (unknown stack, unreadable plan file): reported as one line."""


@dataclass(frozen=True)
class Evaluation:
    plan: dict[str, Any]
    declared: list[Declared]  # what the policy pack sees


def stack_names(root: Path = REPO_ROOT) -> list[str]:
    return sorted(p.name[len("Pulumi.") : -len(".yaml")] for p in root.glob("Pulumi.*.yaml"))


def policy_value(value: Any) -> Any:
    """A recorded property as the policy pack sees it: secret wrappers become `pulumi_policy.Secret`."""
    if rpc.is_rpc_secret(value):
        return Secret(policy_value(rpc.unwrap_rpc_secret(value)))
    if isinstance(value, dict):
        return {key: policy_value(item) for key, item in value.items()}
    if isinstance(value, list):
        return [policy_value(item) for item in value]
    return value


def declared_resources(stack: str, run: PulumiRun) -> list[Declared]:
    stack_name = f"{PROJECT}-{stack}"
    root = Declared(
        urn=f"urn:pulumi:{stack}::{PROJECT}::{STACK_TYPE}::{stack_name}",
        type=STACK_TYPE,
        name=stack_name,
        props={
            name: Secret(value) if name in run.secret_outputs else value
            for name, value in run.outputs.items()
        },
    )
    return [root] + [
        Declared(
            urn=r.urn,
            type=r.type,
            name=r.name,
            props=policy_value(r.inputs),
            protect=r.protect,
            parent=r.parent or None,
            property_dependencies=r.property_dependencies,
        )
        for r in run.resources
    ]


def require_stack(stack: str) -> None:
    if stack not in stack_names():
        raise PlanError(f"no stack file Pulumi.{stack}.yaml (stacks: {', '.join(stack_names()) or 'none'})")


@functools.cache
def worker_bundle() -> WorkerBundle:
    """wrangler's build of edge/, once per process (a --diff against another stack plans twice)."""
    return build_worker_bundle()


def evaluate_stack(stack: str, overrides: dict[str, str] | None = None) -> Evaluation:
    """Plan `stack`; `overrides` (fully qualified key → value) change its config, as an edit of the
    stack file would."""
    require_stack(stack)
    config = stack_config(stack, overrides)
    run = run_pulumi(
        lambda: run_program(worker_bundle()), stack=stack, config=config, secret_keys=TEST_SECRETS
    )
    return Evaluation(build_plan(PROJECT, stack, run, TEST_SECRETS.values()), declared_resources(stack, run))
