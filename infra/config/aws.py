"""Stack config for the AWS side: GPU capacity, network, runtime task, image and audit-log retention.

Keys live in the project namespace (defaults in Pulumi.yaml, per-stack values in Pulumi.<stack>.yaml); the
region is the AWS provider's own `aws:region`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from infra.config.reader import ConfigError, ConfigReader

# GPU families ECS's GPU AMI supports: g4dn, g5, g6, g6e, gr6, p3, p4d, p5 … (NVIDIA).
GPU_INSTANCE_TYPE = re.compile(r"^(g|gr|p)[0-9][a-z0-9-]*\.[0-9]*[a-z]+$")
VPC_ID = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
REGION = re.compile(r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")
AMI_PARAMETER = re.compile(r"^/aws/service/ecs/optimized-ami/[a-z0-9/.-]+/image_id$")
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
    desired_tasks: int
    root_volume_gib: int
    ami_parameter: str
    runtime_memory_mib: int


@dataclass(frozen=True)
class NetworkSettings:
    cidr_block: str
    vpc_id: str | None  # None: the stack creates its own VPC
    subnet_ids: tuple[str, ...]


@dataclass(frozen=True)
class AwsConfig:
    region: str
    gpu: GpuSettings
    network: NetworkSettings
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
    return GpuSettings(
        instance_type=read.string(
            "gpuInstanceType",
            example="g5.xlarge",
            pattern=GPU_INSTANCE_TYPE,
            shape="an NVIDIA GPU instance type such as g5.xlarge or g6.2xlarge",
        ),
        min_instances=minimum,
        max_instances=maximum,
        desired_tasks=read.integer("gpuDesiredTasks", example=1, minimum=0, maximum=100),
        root_volume_gib=read.integer("gpuRootVolumeGib", example=100, minimum=30, maximum=16384),
        ami_parameter=read.string(
            "gpuAmiParameter",
            example="/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id",
            pattern=AMI_PARAMETER,
            shape="an ECS-optimized AMI SSM parameter path",
        ),
        runtime_memory_mib=read.integer("runtimeMemoryMib", example=12288, minimum=512, maximum=2_000_000),
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
    return AwsConfig(
        region=provider.string("region", example="us-east-1", pattern=REGION, shape="an AWS region"),
        gpu=_gpu_settings(read),
        network=_network_settings(read),
        keep_images=read.integer("ecrKeepImages", example=10, minimum=1, maximum=1000),
        log_retention_days=read.choice("logRetentionDays", LOG_RETENTION_DAYS),
        audit_log_retention_days=read.integer("auditLogRetentionDays", example=365, minimum=1, maximum=3650),
    )
