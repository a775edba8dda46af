"""How hard the guardrails bite per stack: mandatory in prod, advisory elsewhere.

A stack may set `<project>:policyEnforcement` (advisory | mandatory | disabled) to override the default
for its name. `python -m infra.policy.enforcement --stack prod` prints the policy-pack config for the
stack (the JSON `pulumi preview --policy-pack-config` takes); the offline plan uses the same dict.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from infra.config.reader import ConfigError
from infra.config.stack_files import project_file, stack_settings
from infra.policy.pack import POLICIES
from infra.policy.rules.protection import stateful_resources_protected
from infra.policy.rules.warm_tasks import MINIMUM_TASKS_DEFAULT, gpu_tasks_stay_warm

LEVELS = ("advisory", "mandatory", "disabled")
ENFORCEMENT_KEY = "policyEnforcement"
PROD_STACKS = ("prod",)


def enforcement_level(stack: str, configured: str | None, key: str = ENFORCEMENT_KEY) -> str:
    if configured is None:
        return "mandatory" if stack in PROD_STACKS else "advisory"
    if configured not in LEVELS:
        raise ConfigError(key, f"must be one of {', '.join(LEVELS)}, got {configured!r}", "mandatory")
    return configured


def stack_enforcement_level(stack: str) -> str:
    key = f"{project_file()['name']}:{ENFORCEMENT_KEY}"
    return enforcement_level(stack, stack_settings(stack).get(key), key)


def policy_config(stack: str, level: str) -> dict[str, dict[str, Any]]:
    """Per-policy config: every policy at `level`; protection of stateful resources and warm GPU tasks
    required in prod (other stacks may scale to zero)."""
    config: dict[str, dict[str, Any]] = {policy.name: {"enforcementLevel": level} for policy in POLICIES}
    config[stateful_resources_protected.name]["requireProtection"] = stack in PROD_STACKS
    config[gpu_tasks_stay_warm.name]["minimumTasks"] = MINIMUM_TASKS_DEFAULT if stack in PROD_STACKS else 0
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.policy.enforcement", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--stack", required=True, help="stack name (Pulumi.<stack>.yaml)")
    stack = parser.parse_args(argv).stack
    try:
        level = stack_enforcement_level(stack)
    except (ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(policy_config(stack, level), indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
