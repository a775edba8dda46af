"""The task definition: image pinned by digest, credentials only through Secrets Manager, one GPU, a health
check on /readyz, and containerDefinitions that the ECS API (botocore's service model) accepts."""

from __future__ import annotations

import base64
import json
import re

import botocore.session
import pytest
from botocore.validate import ParamValidator

from infra import REPO_ROOT
from infra.components.aws.containers import HEALTH_CHECK
from infra.config import ConfigError
from infra.config.stack_files import project_file
from infra.dockerfile import CUDA_DOCKERFILE, env_value, run_as
from tests.infra.aws_harness import (
    MODEL_SHA256,
    MODEL_URL,
    TUNNEL_TOKEN,
    aws_run,
    container_definitions,
    custom_run,
    repository,
    run_with,
    task_secret_versions,
)
from tests.infra.conftest import PROJECT, TEST_SECRETS, plaintext_leaks

STACKS = ["dev", "prod"]
GIB = 1024**3


def stack_prefix(stack: str) -> str:
    return {"dev": "steadytext-dev", "prod": "steadytext-prod"}[stack]


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
    # The provider sends each `host_path` volume as {"name", "host": {"sourcePath"}}.
    request["volumes"] = [
        {"name": volume["name"], "host": {"sourcePath": volume["hostPath"]}}
        for volume in task.input("volumes")
    ]
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
    runtime_repository = repository(run, "-runtime")
    build = run.one("docker-build:index:Image")
    image = container_definitions(run)["runtime"]["image"]
    repository_url = build.input("tags")[0].rsplit(":", 1)[0]
    assert re.fullmatch(r"[0-9]{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/\S+@sha256:[0-9a-f]{64}", image)
    assert image.split("@")[0] == repository_url
    assert image.endswith("@" + run.outputs["imageDigest"])
    assert runtime_repository.urn in build.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_credentials_reach_the_task_only_as_secrets_manager_arns(stack):
    run = aws_run(stack)
    containers = container_definitions(run)
    versions = {v.input("secretId"): v for v in task_secret_versions(run)}
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
        # Load metrics for auto scaling and the SIGTERM drain (tests/infra/test_aws_scaling.py).
        "RUNTIME_EMF_NAMESPACE": "SteadyText/Runtime",
        "RUNTIME_EMF_SERVICE": f"{stack_prefix(stack)}-inference",
        "RUNTIME_DRAIN_SECONDS": "90",
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
    containers = container_definitions(aws_run(stack))
    cloudflared, runtime = containers["cloudflared"], containers["runtime"]
    assert cloudflared["command"] == ["tunnel", "--no-autoupdate", "--grace-period", "90s", "run"]
    assert cloudflared["dependsOn"] == [{"containerName": "runtime", "condition": "HEALTHY"}]
    assert cloudflared["essential"] is True
    # ECS applies the startTimeout of the container waited for (the runtime), not the waiting one's
    # (amazon-ecs-agent dependencygraph: hasDependencyTimedOut reads dependOnContainer.GetStartTimeout()).
    assert "startTimeout" not in cloudflared
    check = runtime["healthCheck"]
    assert runtime["startTimeout"] == check["startPeriod"] + check["interval"] * (check["retries"] + 1)


@pytest.mark.parametrize("stack", STACKS)
def test_cloudflared_runs_the_pinned_digest_from_the_stacks_pull_through_cache(stack):
    run = aws_run(stack)
    image = container_definitions(run)["cloudflared"]["image"]
    defaults = project_file()["config"]
    cache = repository(run, "-cloudflared")
    assert defaults["cloudflaredImage"]["default"] == "cloudflare/cloudflared:2025.11.1"
    assert image == (
        f"123456789012.dkr.ecr.us-east-1.amazonaws.com/{cache.input('name')}"
        f"@{defaults['cloudflaredImageDigest']['default']}"
    )
    assert cache.input("name") == f"{stack_prefix(stack)}-hub/cloudflare/cloudflared"
    assert "docker.io" not in image and ":2025" not in image  # never Docker Hub, never a tag


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
def test_the_task_runs_on_ec2_in_its_own_network_namespace_with_a_protection_only_task_role(stack):
    task = aws_run(stack).one("aws:ecs/taskDefinition:TaskDefinition")
    assert task.input("requiresCompatibilities") == ["EC2"]  # Fargate has no GPUs
    assert task.input("networkMode") == "awsvpc"
    # R2 has its own credentials; the task role only lets the ECS agent set the task's scale-in
    # protection for the runtime (its grant: tests/infra/test_aws_scaling.py).
    assert task.input("taskRoleArn").endswith(f":role/{stack_prefix(stack)}-task-0a1b2c3")


@pytest.mark.parametrize("stack", STACKS)
def test_the_model_cache_lives_on_the_host_so_a_restart_does_not_download_again(stack):
    """The runtime caches the GGUF under RUNTIME_MODEL_CACHE_DIR (set by the image); that directory is a
    host volume, created by the instance's user data for the image's non-root user before ECS starts."""
    run = aws_run(stack)
    runtime = container_definitions(run)["runtime"]
    (volume,) = run.one("aws:ecs/taskDefinition:TaskDefinition").input("volumes")
    (mount,) = runtime["mountPoints"]
    assert mount == {"sourceVolume": volume["name"], "containerPath": "/opt/models", "readOnly": False}
    assert env_value(CUDA_DOCKERFILE, "RUNTIME_MODEL_CACHE_DIR") == mount["containerPath"]
    assert "RUNTIME_MODEL_CACHE_DIR" not in {item["name"] for item in runtime["environment"]}
    host_path = volume["hostPath"]
    assert host_path.startswith("/var/lib/") and "dockerVolumeConfiguration" not in volume
    user_data = base64.b64decode(run.one("aws:ec2/launchTemplate:LaunchTemplate").input("userData")).decode()
    uid, gid = run_as(CUDA_DOCKERFILE)
    assert (uid, gid) == (10001, 10001)
    assert f"install -d -m 0750 -o {uid} -g {gid} {host_path}\n" in user_data


def budget(run) -> tuple[dict, int]:
    runtime = container_definitions(run)["runtime"]
    return runtime["healthCheck"], runtime["startTimeout"]


def test_the_default_models_start_budget_follows_its_size():
    """60 s boot + 242 MiB at modelStartMibPerSecond (10) = 85 s start period, not a fixed 300 s."""
    check, timeout = budget(aws_run("dev"))
    assert (check["startPeriod"], check["interval"], check["retries"]) == (85, 15, 4)
    assert timeout == 85 + 15 * 5


def test_a_faster_fetch_setting_shortens_the_start_period_to_about_the_boot_time():
    check, _ = budget(run_with("dev", {f"{PROJECT}:modelStartMibPerSecond": "1000"}))
    assert check["startPeriod"] == 60 + 1


@pytest.mark.parametrize("model_gib", [4, 20])
def test_a_model_that_needs_longer_than_300_s_gets_the_rest_from_the_checks_after_it(model_gib):
    check, timeout = budget(run_with("dev", {}, model_bytes=model_gib * GIB))
    cold_start = 60 + model_gib * 1024 // 10
    assert check["startPeriod"] == 300  # ECS's maximum
    assert 1 <= check["retries"] <= 10 and 5 <= check["interval"] <= 300  # ECS's limits
    # The last check before UNHEALTHY comes after the expected cold start, and cloudflared waits beyond it.
    assert check["startPeriod"] + check["interval"] * (check["retries"] - 1) >= cold_start
    assert timeout > check["startPeriod"] + check["interval"] * check["retries"]
    assert ecs_validation_errors(register_task_definition_request(run_with("dev", {}, model_gib * GIB))) == ""


def test_a_model_too_large_for_any_ecs_health_check_is_refused_naming_the_setting():
    with pytest.raises(ConfigError) as caught:
        run_with("dev", {f"{PROJECT}:modelStartMibPerSecond": "1"}, model_bytes=50 * GIB)
    message = str(caught.value)
    assert message.startswith(
        f"config {PROJECT}:modelStartMibPerSecond: a cold start of this 51200 MiB model"
    )
    assert "longer than ECS health checks can wait (3000 s)" in message
    assert f"pulumi config set {PROJECT}:modelStartMibPerSecond 18" in message  # 51200 MiB / 2940 s
