"""IAM: each role trusts one service and its policy names exactly the actions it needs, on this stack's
resources only."""

from __future__ import annotations

import json

import pytest

from tests.infra.aws_harness import aws_run, granted_actions, repository, role_policy, task_secret_versions

STACKS = ["dev", "prod"]


def trust(run, suffix: str) -> dict:
    (role,) = [r for r in run.of_type("aws:iam/role:Role") if r.name.endswith(suffix)]
    return json.loads(role.input("assumeRolePolicy"))


def statement(document: dict, sid: str) -> dict:
    return next(s for s in document["Statement"] if s.get("Sid") == sid)


@pytest.mark.parametrize("stack", STACKS)
def test_the_task_execution_role_pulls_two_images_writes_one_log_group_reads_four_secrets(stack):
    run = aws_run(stack)
    document = role_policy(run, "-execution")
    assert granted_actions(document) == {
        "ecr:GetAuthorizationToken",
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "ecr:BatchImportUpstreamImage",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
    }
    runtime_repository = repository(run, "-runtime")
    cache_repository = repository(run, "-cloudflared")
    log_group = run.one("aws:cloudwatch/logGroup:LogGroup")
    secret_arns = {v.input("secretId") for v in task_secret_versions(run)}
    assert len(secret_arns) == 4
    assert (
        statement(document, "PullRuntimeImage")["Resource"]
        == f"arn:aws:ecr:us-east-1:123456789012:repository/{runtime_repository.name}-0a1b2c3"
    )
    # A first pull of an image the pull-through cache lacks imports it from upstream on the puller's behalf
    # (ecr:BatchImportUpstreamImage); the repository is the stack's own, so no ecr:CreateRepository.
    sidecar = statement(document, "PullSidecarThroughCache")
    assert sidecar["Resource"] == (
        f"arn:aws:ecr:us-east-1:123456789012:repository/{cache_repository.input('name')}"
    )
    assert "ecr:BatchImportUpstreamImage" in sidecar["Action"]
    assert "ecr:CreateRepository" not in sidecar["Action"]
    assert statement(document, "WriteLogs")["Resource"] == (
        f"arn:aws:logs:us-east-1:123456789012:log-group:{log_group.input('name')}:log-stream:*"
    )
    assert set(statement(document, "ReadTaskSecrets")["Resource"]) == secret_arns
    # Only the registry login, which authorises nothing by itself, is account-wide.
    wildcard = [s for s in document["Statement"] if s["Resource"] == "*"]
    assert [s["Action"] for s in wildcard] == ["ecr:GetAuthorizationToken"]
    assert trust(run, "-execution")["Statement"][0]["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_instance_role_only_lets_the_ecs_agent_join_this_cluster(stack):
    run = aws_run(stack)
    document = role_policy(run, "-instance")
    assert granted_actions(document) == {
        "ecs:RegisterContainerInstance",
        "ecs:DeregisterContainerInstance",
        "ecs:SubmitAttachmentStateChanges",
        "ecs:SubmitContainerStateChange",
        "ecs:SubmitTaskStateChange",
        "ecs:Poll",
        "ecs:StartTelemetrySession",
        "ecs:UpdateContainerInstancesState",
        "ecs:DiscoverPollEndpoint",
    }
    cluster = run.one("aws:ecs/cluster:Cluster")
    cluster_arn = f"arn:aws:ecs:us-east-1:123456789012:cluster/{cluster.name}-0a1b2c3"
    assert statement(document, "JoinCluster")["Resource"] == cluster_arn
    assert statement(document, "ReceiveWork")["Resource"] == (
        f"arn:aws:ecs:us-east-1:123456789012:container-instance/{cluster.name}-0a1b2c3/*"
    )
    assert [s["Action"] for s in document["Statement"] if s["Resource"] == "*"] == [
        "ecs:DiscoverPollEndpoint"
    ]
    assert trust(run, "-instance")["Statement"][0]["Principal"] == {"Service": "ec2.amazonaws.com"}
    # No managed policy is attached anywhere: the inline documents above are the whole grant.
    assert run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment") == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_allow_is_an_explicit_action_never_a_service_wildcard(stack):
    run = aws_run(stack)
    for suffix in ("-execution", "-instance"):
        for action in granted_actions(role_policy(run, suffix)):
            assert "*" not in action, (suffix, action)
