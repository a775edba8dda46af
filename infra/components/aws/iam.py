"""IAM policy documents for the GPU service, built as plain dicts so tests can read the exact grants.

Each function returns one document; the components serialise them with ``json.dumps`` once every ARN is known.
"""

from collections.abc import Sequence

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


def task_execution_policy(repository_arn: str, log_group_arn: str, secret_arns: Sequence[str]) -> dict:
    """What ECS needs to start the task: pull this image, write to this log group, read these secrets only."""
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
            {
                "Sid": "PullRuntimeImage",
                "Effect": "Allow",
                "Action": [
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                ],
                "Resource": repository_arn,
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
