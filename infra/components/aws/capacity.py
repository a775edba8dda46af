"""GPU capacity for ECS: cluster, GPU instances from the ECS GPU-optimized AMI, and an auto-scaling group that
ECS scales itself (capacity provider with managed scaling) so the service's desired count drives the fleet."""

import base64
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.aws.containers import MODEL_CACHE_HOST_PATH
from infra.components.aws.iam import container_instance_policy, service_role
from infra.dockerfile import CUDA_DOCKERFILE, run_as

# AWS's public parameter for the current ECS GPU-optimized AMI (NVIDIA driver + container toolkit). AL2023:
# the Amazon Linux 2 ECS AMIs reached end of life on 2026-06-30.
GPU_AMI_PARAMETER = "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
ROOT_DEVICE = "/dev/xvda"

# A new launch-template version (a new AMI, user data, instance type) replaces the running instances one at a
# time: a new instance is launched and joins the cluster before an old one is drained (ECS managed draining
# moves its tasks) and terminated. ECS managed termination protection marks every instance that runs a task
# as protected from scale-in, and an instance refresh skips those by default, so it is told to refresh them.
INSTANCE_REFRESH = {
    "strategy": "Rolling",
    "preferences": {
        "min_healthy_percentage": 100,
        "max_healthy_percentage": 200,
        "instance_warmup": "300",
        "skip_matching": True,
        "scale_in_protected_instances": "Refresh",
        "standby_instances": "Terminate",
    },
}


@dataclass(frozen=True)
class GpuCapacityArgs:
    subnet_ids: list[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    instance_type: str = "g5.xlarge"
    min_instances: int = 0
    max_instances: int = 1
    root_volume_gib: int = 100
    ami_parameter: str = GPU_AMI_PARAMETER
    tags: dict[str, str] = field(default_factory=dict)


def ecs_agent_config(cluster_name: str) -> str:
    """User data for the instances: join the cluster, expose the GPUs, keep tasks away from the host's IMDS,
    and prepare the model cache directory the runtime container mounts.

    ECS_AWSVPC_BLOCK_IMDS stops awsvpc tasks from reading the instance role's credentials, and the awslogs
    override makes Docker write the task's logs with the execution role, so the instance role needs no
    CloudWatch Logs grant (ECR pulls already use the execution role). Docker would create a missing bind
    source as root, which the image's non-root user cannot write; user data runs before the ECS agent
    starts, so the directory exists, owned by that user, before any task mounts it.
    """
    settings = {
        "ECS_CLUSTER": cluster_name,
        "ECS_ENABLE_GPU_SUPPORT": "true",
        "ECS_AWSVPC_BLOCK_IMDS": "true",
        "ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE": "true",
    }
    lines = "\n".join(f"{key}={value}" for key, value in settings.items())
    uid, gid = run_as(CUDA_DOCKERFILE)
    return (
        f"#!/bin/bash\ncat >> /etc/ecs/ecs.config <<'EOF'\n{lines}\nEOF\n"
        f"install -d -m 0750 -o {uid} -g {gid} {MODEL_CACHE_HOST_PATH}\n"
    )


def ami_id(parameter: str) -> pulumi.Output[str]:
    """The AMI id in the public SSM parameter, as a plain value.

    The provider marks the parameter's `value` sensitive whatever its type, and the Python SDK then marks the
    whole lookup secret, so the launch template's image id (and every diff of it) would show as [secret].
    An AMI id is public: read `insecure_value` and drop the secret marking.
    """
    return pulumi.Output.unsecret(aws.ssm.get_parameter_output(name=parameter).insecure_value)


class GpuCapacity(pulumi.ComponentResource):
    cluster_name: pulumi.Output[str]
    cluster_arn: pulumi.Output[str]
    capacity_provider_name: pulumi.Output[str]
    auto_scaling_group_name: pulumi.Output[str]

    def __init__(self, name: str, args: GpuCapacityArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("steadytext:aws:GpuCapacity", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            settings=[{"name": "containerInsights", "value": "enabled"}],
            tags=args.tags,
            opts=child,
        )

        role, _ = service_role(
            f"{name}-instance",
            "ec2.amazonaws.com",
            "ECS agent on the GPU instances: join one cluster, nothing else",
            cluster.arn.apply(container_instance_policy),
            args.tags,
            parent=self,
        )
        profile = aws.iam.InstanceProfile(f"{name}-instance", role=role.name, tags=args.tags, opts=child)

        template = aws.ec2.LaunchTemplate(
            f"{name}-gpu",
            image_id=ami_id(args.ami_parameter),
            instance_type=args.instance_type,
            iam_instance_profile={"arn": profile.arn},
            vpc_security_group_ids=[args.security_group_id],
            user_data=cluster.name.apply(lambda n: base64.b64encode(ecs_agent_config(n).encode()).decode()),
            # IMDSv2 only, one hop: containers on a bridge network cannot reach the metadata service either.
            metadata_options={
                "http_endpoint": "enabled",
                "http_tokens": "required",
                "http_put_response_hop_limit": 1,
            },
            block_device_mappings=[
                {
                    "device_name": ROOT_DEVICE,
                    "ebs": {
                        "volume_size": args.root_volume_gib,
                        "volume_type": "gp3",
                        "encrypted": "true",
                        "delete_on_termination": "true",
                    },
                }
            ],
            monitoring={"enabled": True},
            tag_specifications=[{"resource_type": "instance", "tags": {**args.tags, "Name": f"{name}-gpu"}}],
            update_default_version=True,
            tags=args.tags,
            opts=child,
        )

        group = aws.autoscaling.Group(
            f"{name}-gpu",
            vpc_zone_identifiers=args.subnet_ids,
            min_size=args.min_instances,
            max_size=args.max_instances,
            # The explicit version (not "$Latest") is what makes a new template version start a refresh.
            launch_template={"id": template.id, "version": template.latest_version.apply(str)},
            instance_refresh=INSTANCE_REFRESH,
            # ECS managed termination protection needs scale-in protection on the group.
            protect_from_scale_in=True,
            health_check_type="EC2",
            tags=[
                {"key": "AmazonECSManaged", "value": "true", "propagate_at_launch": True},
                *({"key": k, "value": v, "propagate_at_launch": True} for k, v in args.tags.items()),
            ],
            # The capacity provider owns desired capacity; a deploy must not reset it.
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["desiredCapacity"]),
        )

        provider = aws.ecs.CapacityProvider(
            f"{name}-gpu",
            auto_scaling_group_provider={
                "auto_scaling_group_arn": group.arn,
                "managed_termination_protection": "ENABLED",
                "managed_draining": "ENABLED",
                "managed_scaling": {
                    "status": "ENABLED",
                    "target_capacity": 100,
                    "minimum_scaling_step_size": 1,
                    "maximum_scaling_step_size": 2,
                    "instance_warmup_period": 300,
                },
            },
            tags=args.tags,
            opts=child,
        )
        association = aws.ecs.ClusterCapacityProviders(
            f"{name}-cluster",
            cluster_name=cluster.name,
            capacity_providers=[provider.name],
            default_capacity_provider_strategies=[
                {"capacity_provider": provider.name, "weight": 1, "base": 0}
            ],
            opts=child,
        )

        self.cluster_name = cluster.name
        self.cluster_arn = cluster.arn
        # Read back from the association so a service using it waits until the cluster accepts the provider.
        self.capacity_provider_name = association.capacity_providers.apply(lambda names: names[0])
        self.auto_scaling_group_name = group.name
        self.register_outputs(
            {
                "cluster_name": self.cluster_name,
                "cluster_arn": self.cluster_arn,
                "capacity_provider_name": self.capacity_provider_name,
                "auto_scaling_group_name": self.auto_scaling_group_name,
            }
        )
