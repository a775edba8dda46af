"""IAM for the GPU service: policy documents built as plain dicts (so tests can read the exact grants) and
the one way roles are made here, a service principal plus one inline policy."""

import json
from collections.abc import Sequence

import pulumi
import pulumi_aws as aws

POLICY_VERSION = "2012-10-17"


def assume_role_policy(service_principal: str) -> dict:
    """Trust policy letting one AWS service (``ec2.amazonaws.com``, ``ecs-tasks.amazonaws.com``) assume it."""
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": service_principal},
                "Action": "sts:AssumeRole",
            }
        ],
    }


def container_instance_policy(cluster_arn: str) -> dict:
    """What the ECS agent on a GPU instance needs to join this one cluster and report task state.

    The AmazonEC2ContainerServiceforEC2Role actions minus ``ecs:CreateCluster`` (the cluster exists), ECR
    and CloudWatch Logs (the task execution role pulls the image and writes the logs), each scoped to this
    cluster and its container instances. ``DiscoverPollEndpoint`` has no resource type, so it takes ``*``.
    """
    container_instances = cluster_arn.replace(":cluster/", ":container-instance/", 1) + "/*"
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "JoinCluster",
                "Effect": "Allow",
                "Action": [
                    "ecs:RegisterContainerInstance",
                    "ecs:DeregisterContainerInstance",
                    "ecs:SubmitAttachmentStateChanges",
                    "ecs:SubmitContainerStateChange",
                    "ecs:SubmitTaskStateChange",
                ],
                "Resource": cluster_arn,
            },
            {
                "Sid": "ReceiveWork",
                "Effect": "Allow",
                "Action": ["ecs:Poll", "ecs:StartTelemetrySession", "ecs:UpdateContainerInstancesState"],
                "Resource": container_instances,
            },
            {
                "Sid": "FindEndpoint",
                "Effect": "Allow",
                "Action": "ecs:DiscoverPollEndpoint",
                "Resource": "*",
            },
        ],
    }


def task_protection_policy(cluster_arn: str) -> dict:
    """The task role: what the ECS agent does for the runtime behind $ECS_AGENT_URI/task-protection/v1/state,
    with the task role's credentials (the agent's handler calls UpdateTaskProtection/GetTaskProtection and
    answers 403 "no task IAM role credentials available for task" without a role). Both act on tasks, here
    only the tasks of this cluster."""
    tasks = cluster_arn.replace(":cluster/", ":task/", 1) + "/*"
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "OwnScaleInProtection",
                "Effect": "Allow",
                "Action": ["ecs:UpdateTaskProtection", "ecs:GetTaskProtection"],
                "Resource": tasks,
            }
        ],
    }


def task_execution_policy(
    repository_arn: str, cache_repository_arn: str, log_group_arn: str, secret_arns: Sequence[str]
) -> dict:
    """What ECS needs to start the task: pull its two images, write to this log group, read these secrets.

    ``cache_repository_arn`` is the pull-through cache repository cloudflared comes from: pulling an image
    the cache does not hold yet makes ECR fetch it from upstream on the puller's behalf, which needs
    ``ecr:BatchImportUpstreamImage`` (AWS, "IAM permissions required to sync an upstream registry"). The
    repository is declared by the stack, so ``ecr:CreateRepository`` is not needed.
    """
    pull = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                # GetAuthorizationToken is account-wide by design; it grants no image access by itself.
                "Sid": "RegistryLogin",
                "Effect": "Allow",
                "Action": "ecr:GetAuthorizationToken",
                "Resource": "*",
            },
            {"Sid": "PullRuntimeImage", "Effect": "Allow", "Action": pull, "Resource": repository_arn},
            {
                "Sid": "PullSidecarThroughCache",
                "Effect": "Allow",
                "Action": [*pull, "ecr:BatchImportUpstreamImage"],
                "Resource": cache_repository_arn,
            },
            {
                "Sid": "WriteLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"{log_group_arn}:log-stream:*",
            },
            {
                "Sid": "ReadTaskSecrets",
                "Effect": "Allow",
                "Action": "secretsmanager:GetSecretValue",
                "Resource": list(secret_arns),
            },
        ],
    }


def service_role(
    name: str,
    service_principal: str,
    description: str,
    policy: pulumi.Input[dict],
    tags: dict[str, str],
    parent: pulumi.Resource,
) -> tuple[aws.iam.Role, aws.iam.RolePolicy]:
    """A role only ``service_principal`` may assume, whose whole grant is the inline ``policy``."""
    role = aws.iam.Role(
        name,
        assume_role_policy=json.dumps(assume_role_policy(service_principal)),
        description=description,
        tags=tags,
        opts=pulumi.ResourceOptions(parent=parent),
    )
    inline = aws.iam.RolePolicy(
        name,
        role=role.id,
        policy=pulumi.Output.from_input(policy).apply(json.dumps),
        opts=pulumi.ResourceOptions(parent=parent),
    )
    return role, inline
