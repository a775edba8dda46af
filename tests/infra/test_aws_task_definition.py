"""The task definition: image pinned by digest, credentials only through Secrets Manager, one GPU, a health
check on /readyz, and containerDefinitions that the ECS API (botocore's service model) accepts."""

from __future__ import annotations

import json
import re

import botocore.session
import pytest
from botocore.validate import ParamValidator

from infra import REPO_ROOT
from infra.components.aws.containers import CLOUDFLARED_IMAGE, HEALTH_CHECK
from tests.infra.aws_harness import (
    MODEL_SHA256,
    MODEL_URL,
    TUNNEL_TOKEN,
    aws_run,
    container_definitions,
    custom_run,
)
from tests.infra.conftest import PROJECT, TEST_SECRETS, plaintext_leaks

STACKS = ["dev", "prod"]
CREDENTIAL_NAMES = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RUNTIME_AUTH_TOKEN", "TUNNEL_TOKEN"}


def register_task_definition_request(run) -> dict:
    """What the provider sends to ecs:RegisterTaskDefinition: its camelCase inputs, definitions parsed."""
    task = run.one("aws:ecs/taskDefinition:TaskDefinition")
    request = {
        key: task.input(key)
        for key in ("family", "networkMode", "requiresCompatibilities", "executionRoleArn", "cpu", "memory")
        if task.input(key) is not None
    }
    request["containerDefinitions"] = json.loads(task.input("containerDefinitions"))
    return request


def ecs_validation_errors(request: dict) -> str:
    model = botocore.session.get_session().get_service_model("ecs")
    shape = model.operation_model("RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(request, shape)
    return report.generate_report() if report.has_errors() else ""


@pytest.mark.parametrize("stack", STACKS)
def test_the_ecs_api_model_accepts_the_task_definition(stack):
    assert ecs_validation_errors(register_task_definition_request(aws_run(stack))) == ""


def test_the_api_model_check_rejects_what_ecs_would_reject():
    request = register_task_definition_request(aws_run("dev"))
    request["containerDefinitions"][0]["gpu"] = 1  # a common mistake: GPUs go in resourceRequirements
    request["containerDefinitions"][1]["memory"] = "256"
    errors = ecs_validation_errors(request)
    assert 'Unknown parameter in containerDefinitions[0]: "gpu"' in errors
    assert "containerDefinitions[1].memory" in errors


@pytest.mark.parametrize("stack", STACKS)
def test_the_runtime_image_is_the_pushed_build_pinned_by_digest(stack):
    run = aws_run(stack)
    repository = run.one("aws:ecr/repository:Repository")
    build = run.one("docker-build:index:Image")
    image = container_definitions(run)["runtime"]["image"]
    repository_url = build.input("registries")[0]["address"]
    assert re.fullmatch(r"[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/\S+@sha256:[0-9a-f]{64}", image)
    assert image.split("@")[0] == repository_url
    assert image.endswith("@" + run.outputs["imageDigest"])
    assert repository.urn in build.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_credentials_reach_the_task_only_as_secrets_manager_arns(stack):
    run = aws_run(stack)
    containers = container_definitions(run)
    versions = {v.input("secretId"): v for v in run.of_type("aws:secretsmanager/secretVersion:SecretVersion")}
    by_name = {}
    for container in containers.values():
        assert not CREDENTIAL_NAMES & {env["name"] for env in container.get("environment", [])}
        for secret in container.get("secrets", []):
            by_name[secret["name"]] = secret["valueFrom"]
    assert set(by_name) == CREDENTIAL_NAMES
    # Each reference is the ARN of a secret this stack fills with exactly the configured value.
    expected_values = {
        "AWS_ACCESS_KEY_ID": TEST_SECRETS[f"{PROJECT}:r2AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": TEST_SECRETS[f"{PROJECT}:r2SecretAccessKey"],
        "RUNTIME_AUTH_TOKEN": TEST_SECRETS[f"{PROJECT}:originToken"],
        "TUNNEL_TOKEN": TUNNEL_TOKEN,
    }
    for name, arn in by_name.items():
        assert arn.startswith("arn:aws:secretsmanager:"), name
        version = versions[arn]
        assert version.input("secretString") == expected_values[name]
        assert plaintext_leaks(version.inputs["secretString"], [expected_values[name]]) == []
    assert containers["cloudflared"]["secrets"] == [
        {"name": "TUNNEL_TOKEN", "valueFrom": by_name["TUNNEL_TOKEN"]}
    ]


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_value_appears_in_the_task_definition(stack):
    task = aws_run(stack).one("aws:ecs/taskDefinition:TaskDefinition")
    assert plaintext_leaks(task.inputs, [*TEST_SECRETS.values(), TUNNEL_TOKEN]) == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_runtime_gets_one_gpu_the_model_and_a_readiness_health_check(stack):
    runtime = container_definitions(aws_run(stack))["runtime"]
    assert runtime["resourceRequirements"] == [{"type": "GPU", "value": "1"}]
    env = {item["name"]: item["value"] for item in runtime["environment"]}
    assert env == {
        "RUNTIME_HOST": "127.0.0.1",  # only cloudflared, in the same network namespace, reaches it
        "RUNTIME_PORT": "8000",
        "RUNTIME_MODEL_URL": MODEL_URL,
        "RUNTIME_MODEL_SHA256": MODEL_SHA256,
        "RUNTIME_S3_ENDPOINT_URL": "https://a1b2c3d4e5f60718293a4b5c6d7e8f90.r2.cloudflarestorage.com",
        "RUNTIME_N_GPU_LAYERS": "-1",
    }
    assert runtime["healthCheck"]["command"] == HEALTH_CHECK
    assert runtime["healthCheck"]["startPeriod"] >= 60


def test_the_health_check_runs_the_images_readyz_probe():
    """The command points at the script the CUDA image installs, and that script asks /readyz."""
    script_path = HEALTH_CHECK[-1]
    dockerfile = (REPO_ROOT / "container" / "Dockerfile.cuda").read_text()
    installed = re.search(rf"^COPY\s+(\S+)\s+{re.escape(script_path)}\s*$", dockerfile, re.MULTILINE)
    assert installed, f"container/Dockerfile.cuda does not install {script_path}"
    assert "/readyz" in (REPO_ROOT / installed.group(1)).read_text()


def test_the_runtime_port_follows_the_tunnels_origin_port():
    env = {
        item["name"]: item["value"] for item in container_definitions(custom_run())["runtime"]["environment"]
    }
    assert env["RUNTIME_PORT"] == "9000"


@pytest.mark.parametrize("stack", STACKS)
def test_cloudflared_runs_the_tunnel_once_the_runtime_is_healthy(stack):
    cloudflared = container_definitions(aws_run(stack))["cloudflared"]
    assert cloudflared["image"] == CLOUDFLARED_IMAGE
    assert re.fullmatch(r"cloudflare/cloudflared:\d{4}\.\d+\.\d+", CLOUDFLARED_IMAGE)  # a release, not latest
    assert cloudflared["command"] == ["tunnel", "--no-autoupdate", "run"]
    assert cloudflared["dependsOn"] == [{"containerName": "runtime", "condition": "HEALTHY"}]
    assert (
        cloudflared["startTimeout"]
        > container_definitions(aws_run(stack))["runtime"]["healthCheck"]["startPeriod"]
    )
    assert cloudflared["essential"] is True


@pytest.mark.parametrize("stack", STACKS)
def test_both_containers_log_to_the_stacks_log_group(stack):
    run = aws_run(stack)
    log_group = run.one("aws:cloudwatch/logGroup:LogGroup")
    expected_days = {"dev": 14, "prod": 90}[stack]
    assert log_group.input("retentionInDays") == expected_days
    for name, container in container_definitions(run).items():
        options = container["logConfiguration"]["options"]
        assert container["logConfiguration"]["logDriver"] == "awslogs"
        assert options == {
            "awslogs-group": log_group.input("name"),
            "awslogs-region": "us-east-1",
            "awslogs-stream-prefix": name,
        }


@pytest.mark.parametrize("stack", STACKS)
def test_the_task_runs_on_ec2_in_its_own_network_namespace_without_a_task_role(stack):
    task = aws_run(stack).one("aws:ecs/taskDefinition:TaskDefinition")
    assert task.input("requiresCompatibilities") == ["EC2"]  # Fargate has no GPUs
    assert task.input("networkMode") == "awsvpc"
    assert task.input("taskRoleArn") is None  # the runtime needs no AWS API: R2 has its own credentials
