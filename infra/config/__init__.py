"""The stack config, read once into frozen objects before any resource is declared.

`load()` raises `ConfigError` (naming the full key and showing an example) for the first missing or
invalid value, so `pulumi preview` stops with one clear line instead of a half-declared stack.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from infra.config.aws import AwsConfig, load_aws
from infra.config.cloudflare import CloudflareConfig, load_cloudflare
from infra.config.model import ModelConfig, load_model
from infra.config.reader import ConfigError, ConfigReader

__all__ = ["ConfigError", "ConfigReader", "StackConfig", "load"]


@dataclass(frozen=True)
class StackConfig:
    stack: str
    # prod: protect + retain-on-delete every resource that holds data; dev: free to tear down.
    protect: bool
    cloudflare: CloudflareConfig
    model: ModelConfig
    aws: AwsConfig


def load() -> StackConfig:
    read = ConfigReader()
    return StackConfig(
        stack=pulumi.get_stack(),
        protect=read.boolean("protectStatefulResources"),
        cloudflare=load_cloudflare(read, ConfigReader("cloudflare")),
        model=load_model(read),
        aws=load_aws(read, ConfigReader("aws")),
    )
