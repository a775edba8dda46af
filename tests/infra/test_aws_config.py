"""The AWS stack config: both stack files load, and each bad or missing value fails naming its full key."""

from __future__ import annotations

import pytest

from infra import config as stack_config_module
from infra.config import ConfigError
from tests.infra.conftest import PROJECT, TEST_SECRETS, run_pulumi, stack_config


def load_aws(stack: str, overrides: dict[str, str] | None = None, without: tuple[str, ...] = ()):
    loaded = []
    run_pulumi(
        lambda: loaded.append(stack_config_module.load()),
        stack=stack,
        config=stack_config(stack, overrides, without),
        secret_keys=TEST_SECRETS,
    )
    return loaded[0].aws


def test_both_stacks_load_with_their_own_capacity():
    dev, prod = load_aws("dev"), load_aws("prod")
    assert (dev.region, prod.region) == ("us-east-1", "us-east-1")
    assert (dev.gpu.min_instances, prod.gpu.min_instances) == (0, 2)
    assert dev.gpu.instance_type == prod.gpu.instance_type == "g5.xlarge"
    assert dev.network.vpc_id is None and dev.network.cidr_block == "10.42.0.0/16"
    assert (dev.log_retention_days, prod.log_retention_days) == (14, 90)
    assert dev.gpu.ami_parameter.endswith("/amazon-linux-2023/gpu/recommended/image_id")


def test_an_existing_vpc_comes_with_its_subnets():
    loaded = load_aws(
        "dev",
        {f"{PROJECT}:vpcId": "vpc-0123456789abcdef0", f"{PROJECT}:subnetIds": '["subnet-0123456789abcdef0"]'},
    )
    assert loaded.network.vpc_id == "vpc-0123456789abcdef0"
    assert loaded.network.subnet_ids == ("subnet-0123456789abcdef0",)


@pytest.mark.parametrize(
    ("overrides", "key", "expected"),
    [
        ({"gpuInstanceType": "m5.xlarge"}, "gpuInstanceType", "NVIDIA GPU instance type"),
        ({"gpuMinInstances": "3", "gpuMaxInstances": "2"}, "gpuMinInstances", "more than"),
        ({"gpuMaxInstances": "0"}, "gpuMaxInstances", "integer from 1 to 100"),
        ({"gpuMinTasks": "-1"}, "gpuMinTasks", "integer from 0 to 100"),
        ({"gpuMaxTasks": "0"}, "gpuMaxTasks", "integer from 1 to 100"),
        ({"gpuMinTasks": "4", "gpuMaxTasks": "3"}, "gpuMinTasks", "more than"),
        ({"gpuMaxTasks": "6"}, "gpuMaxInstances", "one spare for a rolling deploy"),
        ({"gpuTargetWorkPerTask": "0"}, "gpuTargetWorkPerTask", "integer from 1 to 1000"),
        ({"gpuScaleOutCooldownSeconds": "-5"}, "gpuScaleOutCooldownSeconds", "integer from 0 to 3600"),
        (
            {"gpuScaleOutCooldownSeconds": "300", "gpuScaleInCooldownSeconds": "120"},
            "gpuScaleInCooldownSeconds",
            "must be the slower direction",
        ),
        ({"gpuRootVolumeGib": "8"}, "gpuRootVolumeGib", "integer from 30"),
        ({"gpuAmiParameter": "ami-0123"}, "gpuAmiParameter", "SSM parameter path"),
        ({"runtimeMemoryMib": "lots"}, "runtimeMemoryMib", "integer from 512"),
        ({"vpcCidr": "10.0.0.0/8"}, "vpcCidr", "/16 to /20"),
        ({"vpcCidr": "ten-dot-zero"}, "vpcCidr", "IPv4 CIDR block"),
        ({"vpcId": "vpc-0123456789abcdef0"}, "subnetIds", "at least 1 item"),
        ({"subnetIds": '["subnet-0123456789abcdef0"]'}, "vpcId", "is required when"),
        ({"vpcId": "vpc-0123456789abcdef0", "subnetIds": '["sg-123"]'}, "subnetIds", "subnet id"),
        ({"logRetentionDays": "10"}, "logRetentionDays", "one of 1, 3, 5, 7, 14"),
        ({"auditLogRetentionDays": "0"}, "auditLogRetentionDays", "integer from 1 to 3650"),
        ({"ecrKeepImages": "0"}, "ecrKeepImages", "integer from 1 to 1000"),
    ],
)
def test_bad_values_fail_naming_the_key(overrides, key, expected):
    with pytest.raises(ConfigError) as caught:
        load_aws("prod", {f"{PROJECT}:{name}": value for name, value in overrides.items()})
    message = str(caught.value)
    assert message.startswith(f"config {PROJECT}:{key}:")
    assert expected in message
    assert "pulumi config set" in message


# What each refused family is, and the working type the message must name (container/Dockerfile.cuda builds
# for compute capabilities 7.5, 8.0, 8.6, 8.9 and 9.0).
REFUSED_TYPES = [
    ("g5g.xlarge", "arm64", "g5.xlarge"),
    ("g5g.16xlarge", "arm64", "g5.xlarge"),
    ("g4ad.xlarge", "AMD", "g4dn.xlarge"),
    ("p2.xlarge", "compute capability 3.7", "g4dn.xlarge"),
    ("g3.4xlarge", "compute capability 5.2", "g4dn.xlarge"),
    ("g3s.xlarge", "compute capability 5.2", "g4dn.xlarge"),
    ("p3.2xlarge", "compute capability 7.0", "g5.xlarge"),
    ("p3dn.24xlarge", "compute capability 7.0", "g5.xlarge"),
    ("p6e-gb200.36xlarge", "arm64", "p5.48xlarge"),
    ("inf2.xlarge", "not a known NVIDIA GPU instance type", "g5.xlarge"),
]


@pytest.mark.parametrize(("instance_type", "reason", "instead"), REFUSED_TYPES)
def test_instance_types_that_cannot_run_the_image_are_refused_naming_one_that_can(
    instance_type, reason, instead
):
    with pytest.raises(ConfigError) as caught:
        load_aws("prod", {f"{PROJECT}:gpuInstanceType": instance_type})
    message = str(caught.value)
    assert message.startswith(f"config {PROJECT}:gpuInstanceType: {instance_type}")
    assert reason in message and instead in message
    # The type the message suggests passes the same check.
    assert load_aws("prod", {f"{PROJECT}:gpuInstanceType": instead}).gpu.instance_type == instead


@pytest.mark.parametrize(
    "instance_type",
    [
        "g4dn.xlarge",
        "g5.2xlarge",
        "g6.xlarge",
        "g6e.12xlarge",
        "gr6.4xlarge",
        "p4d.24xlarge",
        "p5.48xlarge",
        "p5en.48xlarge",
        "g4dn.metal",
    ],
)
def test_x86_nvidia_types_the_image_is_built_for_are_accepted(instance_type):
    assert load_aws("prod", {f"{PROJECT}:gpuInstanceType": instance_type}).gpu.instance_type == instance_type


def test_the_accepted_compute_capabilities_are_the_ones_the_dockerfile_builds_for(tmp_path, monkeypatch):
    """CUDA_ARCHITECTURES in container/Dockerfile.cuda is the one home: drop 8.6 there and g5 is refused."""
    from infra.config import gpu_instances
    from infra.dockerfile import CUDA_DOCKERFILE, cuda_architectures

    assert cuda_architectures() == (75, 80, 86, 89, 90)
    edited = tmp_path / "Dockerfile.cuda"
    edited.write_text(CUDA_DOCKERFILE.read_text().replace('"75;80;86;89;90"', '"75;80;89;90"'))
    monkeypatch.setattr(gpu_instances, "cuda_architectures", lambda: cuda_architectures(edited))
    problem = gpu_instances.instance_type_problem("g5.xlarge")
    assert problem is not None and "compute capability 8.6" in problem and "7.5, 8.0, 8.9, 9.0" in problem


def test_the_sidecar_settings_load_from_pulumi_yaml():
    loaded = load_aws("dev").cloudflared
    assert (loaded.repository, loaded.tag) == ("cloudflare/cloudflared", "2025.11.1")
    assert loaded.digest == "sha256:89ee50efb1e9cb2ae30281a8a404fed95eb8f02f0a972617526f8c5b417acae2"
    assert loaded.docker_hub_username == "steadytexttest"


@pytest.mark.parametrize(("region", "expected"), [(None, "is required"), ("Virginia", "an AWS region")])
def test_the_aws_region_is_required_and_checked(region, expected):
    overrides = {} if region is None else {"aws:region": region}
    without = ("aws:region",) if region is None else ()
    with pytest.raises(ConfigError) as caught:
        load_aws("dev", overrides, without)
    assert str(caught.value).startswith("config aws:region:") and expected in str(caught.value)
