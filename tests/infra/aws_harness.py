"""Runs the AWS side for a stack under the shared mocks (once per stack per session) and reads it back."""

from __future__ import annotations

import functools
import json

import pulumi

from infra import config as stack_config_module
from infra.components.aws.audit_logging import AuditLogging, AuditLoggingArgs
from infra.components.aws.origin import GpuOrigin, GpuOriginArgs
from tests.infra.conftest import TEST_SECRETS, PulumiRun, run_pulumi, stack_config

# Stand-ins for what the Cloudflare side hands over (the tunnel token, the model artifact in R2).
TUNNEL_TOKEN = "SECRET-tunnel-token-for-the-aws-tests"
MODEL_URL = "s3://steadytext-models/models/gemma-3-270m-it-Q4_K_M.gguf"
MODEL_SHA256 = "a5fd3b62" + "0" * 52 + "00006818"


def build_aws_side() -> None:
    config = stack_config_module.load()
    tags = {"steadytext:stack": config.stack}
    origin = GpuOrigin(
        config.cloudflare.resource_prefix,
        GpuOriginArgs(
            config=config.aws,
            tunnel_token=pulumi.Output.secret(TUNNEL_TOKEN),
            model_url=MODEL_URL,
            model_sha256=MODEL_SHA256,
            s3_endpoint_url=config.cloudflare.r2_endpoint,
            r2_access_key_id=config.cloudflare.r2_access_key_id,
            r2_secret_access_key=config.cloudflare.r2_secret_access_key,
            origin_token=config.cloudflare.origin_token,
            runtime_port=config.cloudflare.origin_port,
            tags=tags,
        ),
    )
    audit = AuditLogging(
        config.cloudflare.resource_prefix,
        AuditLoggingArgs(
            cloudflare_account_id=config.cloudflare.account_id,
            region=config.aws.region,
            retention_days=config.aws.audit_log_retention_days,
            protect=config.protect,
            tags=tags,
        ),
    )
    pulumi.export("imageDigest", origin.image_digest)
    pulumi.export("auditBucket", audit.bucket_name)


@functools.cache
def aws_run(stack: str) -> PulumiRun:
    return run_with(stack, {})


def run_with(stack: str, overrides: dict[str, str]) -> PulumiRun:
    return run_pulumi(
        build_aws_side, stack=stack, config=stack_config(stack, overrides), secret_keys=TEST_SECRETS
    )


def container_definitions(run: PulumiRun) -> dict[str, dict]:
    task = run.one("aws:ecs/taskDefinition:TaskDefinition")
    return {container["name"]: container for container in json.loads(task.input("containerDefinitions"))}


def role_policy(run: PulumiRun, suffix: str) -> dict:
    (policy,) = [r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name.endswith(suffix)]
    return json.loads(policy.input("policy"))


def granted_actions(document: dict) -> set[str]:
    granted: set[str] = set()
    for statement in document["Statement"]:
        if statement["Effect"] == "Allow":
            actions = statement["Action"]
            granted.update([actions] if isinstance(actions, str) else actions)
    return granted
