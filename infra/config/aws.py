"""Stack config for the AWS side: GPU capacity, network, runtime task, image and audit-log retention.

Keys live in the project namespace (defaults in Pulumi.yaml, per-stack values in Pulumi.<stack>.yaml); the
region is the AWS provider's own `aws:region`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import pulumi

from infra.config.gpu_instances import instance_type_problem
from infra.config.reader import ConfigError, ConfigReader

VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")
AMI_PARAMETER = re.compile(r"^/aws/service/ecs/optimized-ami/[a-z0-9/.-]+/image_id$")
# A Docker Hub repository with its namespace (official images: library/<name>) and a tag.
DOCKER_HUB_IMAGE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*/[a-z0-9]+(?:[._-][a-z0-9]+)*:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
)
IMAGE_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
DOCKER_ID = re.compile(r"^[a-z0-9]{4,30}$")  # Docker Hub: 4-30 lower-case letters and digits
# The only values CloudWatch Logs accepts for a retention period.
LOG_RETENTION_DAYS = (
    1,
    3,
    5,
    7,
    14,
    30,
    60,
    90,
    120,
    150,
    180,
    365,
    400,
    545,
    731,
    1096,
    1827,
    2192,
    2557,
    2922,
    3288,
    3653,
)


@dataclass(frozen=True)
class GpuSettings:
    instance_type: str
    min_instances: int
    max_instances: int
    root_volume_gib: int
    ami_parameter: str
    runtime_memory_mib: int
    # How fast a cold task start gets through the model (R2 download, sha256 check, load), in MiB/s:
    # with the model's size it sizes the runtime's health-check grace (infra/components/aws/start_budget.py).
    model_start_mib_per_second: int


@dataclass(frozen=True)
class ScalingSettings:
    """ECS service auto scaling: the task count follows the work waiting per task (one task per GPU)."""

    min_tasks: int  # 0 lets an idle stack scale to zero; the first miss then starts a task
    max_tasks: int
    # Requests queued or running per task (the runtime's QueueDepth + InFlight, averaged over the tasks)
    # that target tracking holds the service at.
    target_work_per_task: int
    scale_out_cooldown_s: int
    scale_in_cooldown_s: int


@dataclass(frozen=True)
class CloudflaredSettings:
    """The tunnel sidecar, pulled from Docker Hub through an ECR pull-through cache and run by digest."""

    image: str  # Docker Hub repository:tag, e.g. cloudflare/cloudflared:2025.11.1
    digest: str  # sha256:… of that tag (the index digest), what the tasks run
    docker_hub_username: str
    docker_hub_access_token: pulumi.Output[str]

    @property
    def repository(self) -> str:
        return self.image.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.image.rsplit(":", 1)[1]


@dataclass(frozen=True)
class NetworkSettings:
    cidr_block: str
    vpc_id: str | None  # None: the stack creates its own VPC
    subnet_ids: tuple[str, ...]


@dataclass(frozen=True)
class AwsConfig:
    region: str
    gpu: GpuSettings
    scaling: ScalingSettings
    network: NetworkSettings
    cloudflared: CloudflaredSettings
    keep_images: int
    log_retention_days: int
    audit_log_retention_days: int


def _gpu_settings(read: ConfigReader) -> GpuSettings:
    minimum = read.integer("gpuMinInstances", example=1, minimum=0, maximum=100)
    maximum = read.integer("gpuMaxInstances", example=2, minimum=1, maximum=100)
    if minimum > maximum:
        raise ConfigError(
            read.key("gpuMinInstances"),
            f"is {minimum}, more than {read.key('gpuMaxInstances')} ({maximum})",
            str(maximum),
        )
    instance_type = read.string("gpuInstanceType", example="g5.xlarge")
    problem = instance_type_problem(instance_type)
    if problem is not None:
        raise ConfigError(read.key("gpuInstanceType"), problem, "g5.xlarge")
    return GpuSettings(
        instance_type=instance_type,
        min_instances=minimum,
        max_instances=maximum,
        root_volume_gib=read.integer("gpuRootVolumeGib", example=100, minimum=30, maximum=16384),
        ami_parameter=read.string(
            "gpuAmiParameter",
            example="/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id",
            pattern=AMI_PARAMETER,
            shape="an ECS-optimized AMI SSM parameter path",
        ),
        runtime_memory_mib=read.integer("runtimeMemoryMib", example=12288, minimum=512, maximum=2_000_000),
        model_start_mib_per_second=read.integer(
            "modelStartMibPerSecond", example=10, minimum=1, maximum=10_000
        ),
    )


RETIRED_DESIRED_TASKS = "gpuDesiredTasks"
# Keys read only to refuse them with the fix (not declared in Pulumi.yaml any more).
RETIRED_KEYS = (RETIRED_DESIRED_TASKS,)


def _scaling_settings(read: ConfigReader, gpu: GpuSettings) -> ScalingSettings:
    # A fixed count would fight the auto scaling that now owns the service's desired count.
    read.refuse_retired(
        RETIRED_DESIRED_TASKS,
        f"ECS auto scaling now sets the task count between {read.key('gpuMinTasks')} and "
        f"{read.key('gpuMaxTasks')}; remove it from the stack file and set those two instead",
        f"pulumi config rm {read.key(RETIRED_DESIRED_TASKS)} && pulumi config set "
        f"{read.key('gpuMinTasks')} 1 && pulumi config set {read.key('gpuMaxTasks')} 1",
    )
    minimum = read.integer("gpuMinTasks", example=1, minimum=0, maximum=100)
    maximum = read.integer("gpuMaxTasks", example=2, minimum=1, maximum=100)
    if minimum > maximum:
        raise ConfigError(
            read.key("gpuMinTasks"),
            f"is {minimum}, more than {read.key('gpuMaxTasks')} ({maximum})",
            str(maximum),
        )
    # One task per GPU instance, and a rolling deploy at full scale starts a new task before it stops an
    # old one (minimum healthy 100 %): the group must be able to hold one instance more than the tasks.
    if gpu.max_instances < maximum + 1:
        raise ConfigError(
            read.key("gpuMaxInstances"),
            f"is {gpu.max_instances}; {read.key('gpuMaxTasks')} is {maximum}, and each task needs its own "
            "GPU instance plus one spare for a rolling deploy at full scale",
            str(maximum + 1),
        )
    scale_out = read.integer("gpuScaleOutCooldownSeconds", example=60, minimum=0, maximum=3600)
    scale_in = read.integer("gpuScaleInCooldownSeconds", example=600, minimum=0, maximum=86400)
    if scale_in < scale_out:
        raise ConfigError(
            read.key("gpuScaleInCooldownSeconds"),
            f"is {scale_in}, shorter than {read.key('gpuScaleOutCooldownSeconds')} ({scale_out}); scale-in "
            "must be the slower direction (a GPU task takes minutes to come back)",
            str(max(600, scale_out)),
        )
    return ScalingSettings(
        min_tasks=minimum,
        max_tasks=maximum,
        target_work_per_task=read.integer("gpuTargetWorkPerTask", example=4, minimum=1, maximum=1000),
        scale_out_cooldown_s=scale_out,
        scale_in_cooldown_s=scale_in,
    )


def _cloudflared_settings(read: ConfigReader) -> CloudflaredSettings:
    return CloudflaredSettings(
        image=read.string(
            "cloudflaredImage",
            example="cloudflare/cloudflared:2025.11.1",
            pattern=DOCKER_HUB_IMAGE,
            shape="a Docker Hub namespace/repository:tag",
        ),
        digest=read.string(
            "cloudflaredImageDigest",
            example="sha256:" + "0" * 64,
            pattern=IMAGE_DIGEST,
            shape="the image's sha256:<64 hex digits> digest (docker buildx imagetools inspect <image>)",
        ),
        docker_hub_username=read.string(
            "dockerHubUsername", example="mydockerid", pattern=DOCKER_ID, shape="a Docker ID"
        ),
        docker_hub_access_token=read.secret("dockerHubAccessToken", example="<Docker Hub access token>"),
    )


def _network_settings(read: ConfigReader) -> NetworkSettings:
    cidr = read.string("vpcCidr", example="10.42.0.0/16")
    try:
        network = ipaddress.IPv4Network(cidr)
    except ValueError:
        network = None
    if network is None or not 16 <= network.prefixlen <= 20:
        raise ConfigError(
            read.key("vpcCidr"), f"must be an IPv4 CIDR block from /16 to /20, got {cidr!r}", "10.42.0.0/16"
        )
    vpc_id = read.optional_string(
        "vpcId", example="vpc-0123456789abcdef0", pattern=VPC_ID, shape="a VPC id (vpc-…)"
    )
    subnet_ids = read.string_list(
        "subnetIds",
        example="subnet-0123456789abcdef0",
        pattern=SUBNET_ID,
        shape="a subnet id (subnet-…)",
        min_items=1 if vpc_id else 0,
    )
    if subnet_ids and not vpc_id:
        raise ConfigError(
            read.key("vpcId"), f"is required when {read.key('subnetIds')} is set", "vpc-0123456789abcdef0"
        )
    return NetworkSettings(cidr_block=str(network), vpc_id=vpc_id, subnet_ids=subnet_ids)


def load_aws(read: ConfigReader, provider: ConfigReader) -> AwsConfig:
    """`read` covers the project namespace, `provider` the AWS provider's (`aws:region`)."""
    gpu = _gpu_settings(read)
    return AwsConfig(
        region=provider.string("region", example="us-east-1", pattern=REGION, shape="an AWS region"),
        gpu=gpu,
        scaling=_scaling_settings(read, gpu),
        network=_network_settings(read),
        cloudflared=_cloudflared_settings(read),
        keep_images=read.integer("ecrKeepImages", example=10, minimum=1, maximum=1000),
        log_retention_days=read.choice("logRetentionDays", LOG_RETENTION_DAYS),
        audit_log_retention_days=read.integer("auditLogRetentionDays", example=365, minimum=1, maximum=3650),
    )
