"""The config the Pulumi CLI hands the program for a stack, computed from the files in the repository.

`pulumi up -s <stack>` merges the project's `config:` defaults (Pulumi.yaml) with the stack file
(Pulumi.<stack>.yaml) and passes every value as a string (lists and objects as JSON). Tests and the
offline plan run the program under mocks, so they need the same merge without the CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from infra import REPO_ROOT


def _as_cli_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


def _qualified(project: str, key: str) -> str:
    return key if ":" in key else f"{project}:{key}"


def project_file(root: Path = REPO_ROOT) -> dict[str, Any]:
    return yaml.safe_load((root / "Pulumi.yaml").read_text())


def stack_settings(stack: str, root: Path = REPO_ROOT) -> dict[str, str]:
    """Fully qualified key → value as the program would see it for `stack`.

    Encrypted values (`secure:`) are left out: they cannot be decrypted here, and the committed
    stack files hold none.
    """
    project = project_file(root)
    name = project["name"]
    settings: dict[str, str] = {}
    for key, declared in (project.get("config") or {}).items():
        value = declared.get("default", declared.get("value")) if isinstance(declared, dict) else declared
        if value is not None:
            settings[_qualified(name, key)] = _as_cli_string(value)
    stack_file = yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text()) or {}
    for key, value in (stack_file.get("config") or {}).items():
        if isinstance(value, dict) and "secure" in value:
            continue
        settings[_qualified(name, key)] = _as_cli_string(value)
    return settings
