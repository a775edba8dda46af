"""`python -m infra.plan --stack dev|prod [--diff OTHER_STACK_OR_PLAN_FILE] [--json] [--policy]`

Exit status: 0 done; 1 bad input (stack config, stack name, plan file), message on stderr; 2 bad
arguments; 3 the policy pack found a violation that blocks this stack (mandatory enforcement).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pulumi
import yaml

from infra.plan.diff import diff_plans
from infra.plan.evaluate import PlanError, evaluate_stack, require_stack, stack_names
from infra.plan.inventory import PLAN_FORMAT
from infra.plan.render import render_diff, render_plan, render_violations
from infra.policy.enforcement import policy_config, stack_enforcement_level
from infra.policy.evaluate import run_policies
from infra.policy.pack import POLICIES
from infra.policy.rules.stack_outputs import no_secret_in_plain_outputs
from infra.worker_bundle import WorkerBundleError

EXIT_BAD_INPUT = 1
EXIT_POLICY_BLOCKED = 3


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m infra.plan", description="Offline plan of the Pulumi program (mocks, no credentials)."
    )
    parser.add_argument("--stack", required=True, help="stack to plan (Pulumi.<stack>.yaml)")
    parser.add_argument(
        "--diff",
        metavar="OTHER",
        help="compare with another stack or a saved plan file (--json output); OTHER is the base",
    )
    parser.add_argument(
        "--json", action="store_true", help="print JSON (a plan file when used without --diff)"
    )
    parser.add_argument(
        "--policy",
        action="store_true",
        help="run the policy pack over the plan (blocking in stacks where it is mandatory)",
    )
    return parser.parse_args(argv)


def load_plan_file(path: Path) -> dict[str, Any]:
    try:
        plan = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PlanError(f"cannot read plan file {path}: {error}") from error
    if (
        not isinstance(plan, dict)
        or plan.get("format") != PLAN_FORMAT
        or not isinstance(plan.get("resources"), list)
    ):
        raise PlanError(
            f"{path} is not a plan file (write one with: python -m infra.plan --stack STACK --json)"
        )
    return {**plan, "label": f"{path} (stack {plan.get('stack')})"}


def base_source(other: str) -> Callable[[], dict[str, Any]]:
    """Where `--diff OTHER` comes from, checked before anything is planned so a bad OTHER fails fast."""
    if Path(other).is_file():
        saved = load_plan_file(Path(other))
        return lambda: saved
    if other in stack_names():
        return lambda: evaluate_stack(other).plan
    raise PlanError(f"--diff {other}: neither a plan file nor a stack (stacks: {', '.join(stack_names())})")


def plan_policy_config(stack: str, level: str) -> dict[str, dict[str, Any]]:
    """The stack's policy config, plus: this inventory keeps secret markers, so outputs can be checked."""
    config = policy_config(stack, level)
    config[no_secret_in_plain_outputs.name]["secretsVisible"] = True
    return config


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        require_stack(args.stack)
        base_of = base_source(args.diff) if args.diff else None
        level = stack_enforcement_level(args.stack) if args.policy else None
        head = evaluate_stack(args.stack)
        base = base_of() if base_of else None
    except (PlanError, pulumi.RunError, yaml.YAMLError, WorkerBundleError) as error:
        # ConfigError is a RunError: its message names the key and shows a `pulumi config set` line.
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT

    result = diff_plans(base, head.plan) if base else head.plan
    violations = run_policies(head.declared, POLICIES, plan_policy_config(args.stack, level)) if level else []
    if args.json:
        if level:
            result = {
                **result,
                "policy": {"enforcement": level, "violations": [asdict(v) for v in violations]},
            }
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(render_diff(result) if base else render_plan(result), end="")
        if level:
            print("\n" + render_violations(violations, level), end="")
    return EXIT_POLICY_BLOCKED if any(v.blocking for v in violations) else 0


if __name__ == "__main__":
    sys.exit(main())
