"""Runs the AWS side for a stack under the shared mocks (once per stack per session) and reads it back."""

from __future__ import annotations

import functools
import json

import pulumi

from infra import config as stack_config_module
from infra.program import deploy_aws
from tests.infra.conftest import PROJECT, TEST_SECRETS, PulumiRun, run_pulumi, stack_config

# Stand-ins for what the Cloudflare side hands over (the tunnel token, the model artifact in R2); the
# whole program, with the real hand-over, is tested in test_aws_program.py.
TUNNEL_TOKEN = "SECRET-tunnel-token-for-the-aws-tests"
MODEL_URL = "s3://steadytext-models/models/gemma-3-270m-it-Q4_K_M.gguf"
MODEL_SHA256 = "a5fd3b62" + "0" * 52 + "00006818"
MODEL_BYTES = 253_114_368  # the size of the default GGUF (gemma3-270m Q4_K_M)


# Every non-default AWS setting the tests vary, in one run (a mocks run per setting would be slower).
EXISTING_VPC = "vpc-0123456789abcdef0"
EXISTING_SUBNETS = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
AL2_GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2/gpu/recommended/image_id"
CUSTOM_OVERRIDES = {
    f"{PROJECT}:vpcId": EXISTING_VPC,
    f"{PROJECT}:subnetIds": json.dumps(EXISTING_SUBNETS),
    f"{PROJECT}:gpuAmiParameter": AL2_GPU_AMI_PARAMETER,
    f"{PROJECT}:gpuInstanceType": "g6.2xlarge",
    f"{PROJECT}:ecrKeepImages": "3",
    f"{PROJECT}:originPort": "9000",
}


def build_aws_side(model_bytes: int = MODEL_BYTES) -> None:
    deploy_aws(
        stack_config_module.load(), pulumi.Output.secret(TUNNEL_TOKEN), MODEL_URL, MODEL_SHA256, model_bytes
    )


@functools.cache
def aws_run(stack: str) -> PulumiRun:
    return run_with(stack, {})


@functools.cache
def custom_run() -> PulumiRun:
    """The prod stack with CUSTOM_OVERRIDES."""
    return run_with("prod", CUSTOM_OVERRIDES)


def run_with(stack: str, overrides: dict[str, str], model_bytes: int = MODEL_BYTES) -> PulumiRun:
    return run_pulumi(
        lambda: build_aws_side(model_bytes),
        stack=stack,
        config=stack_config(stack, overrides),
        secret_keys=TEST_SECRETS,
    )


def repository(run: PulumiRun, suffix: str):
    """The ECR repository whose resource name ends in `suffix` ("-runtime", "-cloudflared")."""
    (found,) = [r for r in run.of_type("aws:ecr/repository:Repository") if r.name.endswith(suffix)]
    return found


def task_secret_versions(run: PulumiRun) -> list:
    """The task's own secrets (not the pull-through cache's Docker Hub login, which only ECR reads)."""
    return [
        version
        for version in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
        if not version.name.endswith("-docker-hub")
    ]


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
