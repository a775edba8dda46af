"""Reads `edge/wrangler.jsonc`, the single source of the Worker's bindings, compatibility settings,
Durable Object migrations, rate limits and cron schedules (the deployed Worker must match it)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from infra import REPO_ROOT

WRANGLER_CONFIG = REPO_ROOT / "edge" / "wrangler.jsonc"

# A JSON string, a // line comment or a /* block comment */: strings are matched first so that
# "//" inside a string (URLs) is never mistaken for a comment.
_JSONC_TOKEN = re.compile(r'"(?:\\.|[^"\\])*"|//[^\n]*|/\*.*?\*/', re.DOTALL)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def parse_jsonc(text: str) -> Any:
    without_comments = _JSONC_TOKEN.sub(lambda m: m.group(0) if m.group(0).startswith('"') else "", text)
    # Trailing commas only ever follow a value, never sit inside a string, once comments are gone
    # (a string holding ",}" would be the exception; wrangler configs have none).
    return json.loads(_TRAILING_COMMA.sub(r"\1", without_comments))


class WranglerConfigError(ValueError):
    pass


def load_wrangler_config(path: Path = WRANGLER_CONFIG) -> dict[str, Any]:
    try:
        return parse_jsonc(path.read_text())
    except ValueError as error:
        raise WranglerConfigError(f"{path} is not valid JSONC: {error}") from None


# wrangler.jsonc names its Cloudflare resources (D1 database, queues, buckets, workflows) for local dev as
# `steadytext-<role>`, the default `resourcePrefix`; a stack deploys each as `<resourcePrefix>-<role>`.
LOCAL_RESOURCE_PREFIX = "steadytext"


def resource_role(local_name: str) -> str:
    """What a resource is for: its wrangler.jsonc name without `steadytext-` (`batch-lines`)."""
    if not local_name.startswith(f"{LOCAL_RESOURCE_PREFIX}-"):
        raise WranglerConfigError(
            f"{WRANGLER_CONFIG}: resource name {local_name!r} must start with {LOCAL_RESOURCE_PREFIX!r}- "
            "(each stack deploys it as <resourcePrefix>-<the rest>)"
        )
    return local_name.removeprefix(f"{LOCAL_RESOURCE_PREFIX}-")


def deployed_name(local_name: str, resource_prefix: str) -> str:
    """The name a stack gives the resource edge/wrangler.jsonc calls `local_name`."""
    return f"{resource_prefix}-{resource_role(local_name)}"
