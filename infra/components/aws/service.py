"""The GPU service that runs the inference runtime: its secrets, log group, execution role, task definition
and ECS service."""

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.aws.containers import SecretRefs, TaskSettings, container_definitions, task_volumes
from infra.components.aws.iam import service_role, task_execution_policy, task_protection_policy
from infra.components.aws.start_budget import StartBudget


@dataclass(frozen=True)
class GpuServiceArgs:
    cluster_arn: pulumi.Input[str]
    capacity_provider_name: pulumi.Input[str]
    subnet_ids: list[pulumi.Input[str]]
    security_group_id: pulumi.Input[str]
    image_ref: pulumi.Input[str]
    repository_arn: pulumi.Input[str]
    cloudflared_image_ref: pulumi.Input[str]  # pull-through cache repository @ digest
    cloudflared_repository_arn: pulumi.Input[str]
    start_budget: StartBudget
    model_url: pulumi.Input[str]
    model_sha256: pulumi.Input[str]
    s3_endpoint_url: pulumi.Input[str]
    region: pulumi.Input[str]
    # Secret inputs: each lands in its own Secrets Manager secret and reaches the task only by ARN.
    tunnel_token: pulumi.Input[str]
    r2_access_key_id: pulumi.Input[str]
    r2_secret_access_key: pulumi.Input[str]
    origin_token: pulumi.Input[str]
    # The service's first task count; from then on auto scaling owns it (infra/components/aws/scaling.py).
    initial_tasks: int = 1
    runtime_memory_mib: int = 12288
    runtime_port: int = 8000
    log_retention_days: int = 30
    tags: dict[str, str] = field(default_factory=dict)


def task_family(name: str) -> str:
    """The task definition family of the GpuService `name`: also the runtime's EMF `Service` dimension and
    the Worker's scale-signal dimension, a name known before anything is created."""
    return f"{name}-inference"


class GpuService(pulumi.ComponentResource):
    service_name: pulumi.Output[str]
    log_group_name: pulumi.Output[str]
    task_definition_arn: pulumi.Output[str]
    family: str  # the task definition family, also the runtime's EMF `Service` dimension

    def __init__(self, name: str, args: GpuServiceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("steadytext:aws:GpuService", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        secret_versions = {
            key: self._secret(name, key, value, args.tags)
            for key, value in (
                ("tunnel-token", args.tunnel_token),
                ("r2-access-key-id", args.r2_access_key_id),
                ("r2-secret-access-key", args.r2_secret_access_key),
                ("origin-token", args.origin_token),
            )
        }
        secret_arns = {key: version.secret_id for key, version in secret_versions.items()}
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-logs",
            name=f"/ecs/{name}",
            retention_in_days=args.log_retention_days,
            tags=args.tags,
            opts=child,
        )

        execution_role, execution_policy = service_role(
            f"{name}-execution",
            "ecs-tasks.amazonaws.com",
            "Starts the inference task: pull its images, write its logs, read its four secrets",
            pulumi.Output.all(
                args.repository_arn, args.cloudflared_repository_arn, log_group.arn, *secret_arns.values()
            ).apply(lambda values: task_execution_policy(values[0], values[1], values[2], values[3:])),
            args.tags,
            parent=self,
        )

        # The runtime sets and clears its own scale-in protection through the ECS agent
        # ($ECS_AGENT_URI/task-protection/v1/state); the agent calls UpdateTaskProtection with the task
        # role's credentials and answers 403 when the task has none.
        task_role, _ = service_role(
            f"{name}-task",
            "ecs-tasks.amazonaws.com",
            "The running inference task: set and read its own scale-in protection, nothing else",
            pulumi.Output.from_input(args.cluster_arn).apply(task_protection_policy),
            args.tags,
            parent=self,
        )
        family = task_family(name)

        definitions = pulumi.Output.all(
            image_ref=args.image_ref,
            cloudflared_image=args.cloudflared_image_ref,
            model_url=args.model_url,
            model_sha256=args.model_sha256,
            s3_endpoint_url=args.s3_endpoint_url,
            log_group=log_group.name,
            region=args.region,
            tunnel_token=secret_arns["tunnel-token"],
            r2_access_key_id=secret_arns["r2-access-key-id"],
            r2_secret_access_key=secret_arns["r2-secret-access-key"],
            origin_token=secret_arns["origin-token"],
        ).apply(
            lambda v: json.dumps(
                container_definitions(
                    TaskSettings(
                        image_ref=v["image_ref"],
                        model_url=v["model_url"],
                        model_sha256=v["model_sha256"],
                        s3_endpoint_url=v["s3_endpoint_url"],
                        log_group=v["log_group"],
                        region=v["region"],
                        runtime_memory_mib=args.runtime_memory_mib,
                        runtime_port=args.runtime_port,
                        start_budget=args.start_budget,
                        cloudflared_image=v["cloudflared_image"],
                        emf_service=family,
                    ),
                    SecretRefs(
                        tunnel_token=v["tunnel_token"],
                        r2_access_key_id=v["r2_access_key_id"],
                        r2_secret_access_key=v["r2_secret_access_key"],
                        origin_token=v["origin_token"],
                    ),
                )
            )
        )

        # awsvpc: the task gets its own ENI in the private subnets (no public IP) with the egress-only group,
        # and ECS_AWSVPC_BLOCK_IMDS keeps it away from the instance role.
        task = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=family,
            requires_compatibilities=["EC2"],
            network_mode="awsvpc",
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            container_definitions=definitions,
            volumes=task_volumes(),
            tags=args.tags,
            opts=child,
        )

        service = aws.ecs.Service(
            f"{name}-service",
            cluster=args.cluster_arn,
            task_definition=task.arn,
            desired_count=args.initial_tasks,
            capacity_provider_strategies=[{"capacity_provider": args.capacity_provider_name, "weight": 1}],
            network_configuration={
                "subnets": args.subnet_ids,
                "security_groups": [args.security_group_id],
                "assign_public_ip": False,
            },
            # One GPU per task: a rolling deploy starts each new task on new capacity, then stops an old one.
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            # ECS reads secrets only when a task starts: a new secret value (a new version) rolls the tasks.
            triggers={
                "secret_versions": pulumi.Output.all(*[v.version_id for v in secret_versions.values()]).apply(
                    ",".join
                )
            },
            force_new_deployment=True,
            # Spread replicas so one instance or AZ loss leaves the others serving through the tunnel.
            ordered_placement_strategies=[
                {"type": "spread", "field": "attribute:ecs.availability-zone"},
                {"type": "spread", "field": "instanceId"},
            ],
            enable_ecs_managed_tags=True,
            propagate_tags="SERVICE",
            tags=args.tags,
            # The execution policy and the secret values must exist before ECS first starts a task. Auto
            # scaling owns the desired count: a deploy must not reset it to the initial value.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[execution_policy, *secret_versions.values()],
                ignore_changes=["desiredCount"],
            ),
        )

        self.service_name = service.name
        self.log_group_name = log_group.name
        self.task_definition_arn = task.arn
        self.family = family
        self.register_outputs(
            {
                "service_name": self.service_name,
                "log_group_name": self.log_group_name,
                "task_definition_arn": self.task_definition_arn,
            }
        )

    def _secret(
        self, name: str, key: str, value: pulumi.Input[str], tags: dict[str, str]
    ) -> aws.secretsmanager.SecretVersion:
        """One Secrets Manager secret holding ``value``; the task sees only its ARN (secret_id)."""
        secret = aws.secretsmanager.Secret(
            f"{name}-{key}",
            description=f"steadytext inference task: {key}",
            tags=tags,
            opts=pulumi.ResourceOptions(parent=self),
        )
        return aws.secretsmanager.SecretVersion(
            f"{name}-{key}",
            secret_id=secret.arn,
            secret_string=pulumi.Output.secret(value),
            opts=pulumi.ResourceOptions(parent=self),
        )
