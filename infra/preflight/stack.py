"""The stack's config as `pulumi up -s <stack>` would see it, read without the Pulumi CLI.

The values come from Pulumi.yaml's defaults and Pulumi.<stack>.yaml (`infra/config/stack_files.py`) and
go through the program's own readers, so the preflight refuses exactly what the program would, naming
the key. Secrets are not read: the stack files hold them encrypted, and the preflight checks the
operator's own credentials (CLOUDFLARE_API_TOKEN, the AWS credential chain) instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi

from infra import REPO_ROOT
from infra.config.aws import AwsConfig, load_aws
from infra.config.cloudflare import CloudflareConfig, load_cloudflare
from infra.config.reader import ConfigReader
from infra.config.stack_files import project_file, stack_settings


class SettingsReader(ConfigReader):
    """A reader that leaves secrets out: a secret key reads as None (the checks never use one)."""

    def secret(self, name: str, *, example: str) -> pulumi.Output[str]:
        return None  # type: ignore[return-value]


@dataclass(frozen=True)
class StackSettings:
    stack: str
    cloudflare: CloudflareConfig
    aws: AwsConfig


def load_stack(stack: str, root: Path = REPO_ROOT) -> StackSettings:
    """The stack's Cloudflare and AWS config; raises `ConfigError` naming the first bad key."""
    if not (root / f"Pulumi.{stack}.yaml").is_file():
        raise FileNotFoundError(f"no stack file Pulumi.{stack}.yaml in {root}")
    pulumi.runtime.set_all_config(stack_settings(stack, root))
    project = SettingsReader(project_file(root)["name"])
    return StackSettings(
        stack=stack,
        cloudflare=load_cloudflare(project, SettingsReader("cloudflare")),
        aws=load_aws(project, SettingsReader("aws")),
    )
