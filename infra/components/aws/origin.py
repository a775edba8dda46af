"""The GPU origin on AWS as one component: network → images → GPU capacity → inference service.

The Cloudflare side hands it the tunnel token, the model artifact in R2 and the credentials; everything
secret goes into Secrets Manager inside ``InferenceService``.
"""

from dataclasses import dataclass, field

import pulumi

from infra import REPO_ROOT
from infra.build_context import program_relative
from infra.components.aws.capacity import GpuCapacity, GpuCapacityArgs
from infra.components.aws.cold_start import cold_start_seconds
from infra.components.aws.image import RuntimeImage, RuntimeImageArgs
from infra.components.aws.network import GpuNetwork, GpuNetworkArgs
from infra.components.aws.scaling import ServiceScaling, ServiceScalingArgs
from infra.components.aws.service import InferenceService, InferenceServiceArgs
from infra.components.aws.sidecar_image import SidecarImage, SidecarImageArgs, cache_prefix
from infra.components.aws.start_budget import StartBudget, StartBudgetError, start_budget
from infra.config.aws import AwsConfig
from infra.config.reader import ConfigError, ConfigReader
from infra.dockerfile import CUDA_DOCKERFILE


@dataclass(frozen=True)
class GpuOriginArgs:
    config: AwsConfig
    tunnel_token: pulumi.Input[str]
    model_url: pulumi.Input[str]  # s3://<r2 bucket>/<key>
    model_sha256: pulumi.Input[str]
    model_bytes: int  # the GGUF's size: sizes how long the runtime may take to start
    s3_endpoint_url: pulumi.Input[str]
    r2_access_key_id: pulumi.Input[str]
    r2_secret_access_key: pulumi.Input[str]
    origin_token: pulumi.Input[str]
    runtime_port: int
    tags: dict[str, str] = field(default_factory=dict)


def task_start_budget(model_bytes: int, config: AwsConfig) -> StartBudget:
    """The runtime's start budget for this model, or a ConfigError naming the key that would fix it."""
    try:
        return start_budget(model_bytes, config.gpu.model_start_mib_per_second)
    except StartBudgetError as error:
        raise ConfigError(
            ConfigReader().key("modelStartMibPerSecond"),
            f"{error}; raise it if the hosts really fetch and load faster, or bake the model into the image",
            str(error.minimum_mib_per_second),
        ) from error


class GpuOrigin(pulumi.ComponentResource):
    image_digest: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    log_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: GpuOriginArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("steadytext:aws:GpuOrigin", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        budget = task_start_budget(args.model_bytes, config)

        network = GpuNetwork(
            name,
            GpuNetworkArgs(
                instance_type=config.gpu.instance_type,
                cidr_block=config.network.cidr_block,
                vpc_id=config.network.vpc_id,
                subnet_ids=config.network.subnet_ids,
                tags=args.tags,
            ),
            opts=child,
        )
        image = RuntimeImage(
            name,
            RuntimeImageArgs(
                context_dir=program_relative(REPO_ROOT),
                dockerfile=program_relative(CUDA_DOCKERFILE),
                keep_images=config.keep_images,
                tags=args.tags,
            ),
            opts=child,
        )
        sidecar = SidecarImage(
            name,
            SidecarImageArgs(
                cache_prefix=cache_prefix(name),
                upstream_repository=config.cloudflared.repository,
                tag=config.cloudflared.tag,
                digest=config.cloudflared.digest,
                docker_hub_username=config.cloudflared.docker_hub_username,
                docker_hub_access_token=config.cloudflared.docker_hub_access_token,
                keep_images=config.keep_images,
                tags=args.tags,
            ),
            opts=child,
        )
        capacity = GpuCapacity(
            name,
            GpuCapacityArgs(
                subnet_ids=network.private_subnet_ids,
                security_group_id=network.security_group_id,
                instance_type=config.gpu.instance_type,
                min_instances=config.gpu.min_instances,
                max_instances=config.gpu.max_instances,
                root_volume_gib=config.gpu.root_volume_gib,
                ami_parameter=config.gpu.ami_parameter,
                tags=args.tags,
            ),
            opts=child,
        )
        service = InferenceService(
            name,
            InferenceServiceArgs(
                cluster_arn=capacity.cluster_arn,
                capacity_provider_name=capacity.capacity_provider_name,
                subnet_ids=network.private_subnet_ids,
                security_group_id=network.security_group_id,
                image_ref=image.image_ref,
                repository_arn=image.repository_arn,
                cloudflared_image_ref=sidecar.image_ref,
                cloudflared_repository_arn=sidecar.repository_arn,
                start_budget=budget,
                model_url=args.model_url,
                model_sha256=args.model_sha256,
                s3_endpoint_url=args.s3_endpoint_url,
                region=config.region,
                tunnel_token=args.tunnel_token,
                r2_access_key_id=args.r2_access_key_id,
                r2_secret_access_key=args.r2_secret_access_key,
                origin_token=args.origin_token,
                initial_tasks=config.scaling.min_tasks,
                runtime_memory_mib=config.gpu.runtime_memory_mib,
                runtime_port=args.runtime_port,
                log_retention_days=config.log_retention_days,
                tags=args.tags,
            ),
            opts=child,
        )

        scaling = config.scaling
        ServiceScaling(
            name,
            ServiceScalingArgs(
                cluster_name=capacity.cluster_name,
                service_name=service.service_name,
                emf_service=service.family,
                min_tasks=scaling.min_tasks,
                max_tasks=scaling.max_tasks,
                target_work_per_task=scaling.target_work_per_task,
                scale_out_cooldown_s=scaling.scale_out_cooldown_s,
                scale_in_cooldown_s=scaling.scale_in_cooldown_s,
                cold_start_s=cold_start_seconds(budget),
            ),
            opts=child,
        )

        self.image_digest = image.digest
        self.cluster_name = capacity.cluster_name
        self.service_name = service.service_name
        self.log_group_name = service.log_group_name
        self.register_outputs(
            {
                "image_digest": self.image_digest,
                "cluster_name": self.cluster_name,
                "service_name": self.service_name,
                "log_group_name": self.log_group_name,
            }
        )
