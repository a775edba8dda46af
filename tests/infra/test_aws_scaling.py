"""ECS service auto scaling under the mocks: the scalable target, the target-tracking policy and its metric
math over the runtime's EMF metrics, the requests validated against botocore's application-autoscaling
model, the service leaving its desired count to auto scaling, scale-in protection and the stop timeouts."""

from __future__ import annotations

import ast
import json
import re

import botocore.session
import pytest
from botocore.validate import ParamValidator

from infra import REPO_ROOT
from infra.components.aws.scaling import METRIC_NAMESPACE, MODELS, WORK_METRICS
from infra.config import ConfigError
from tests import python_source
from tests.infra.aws_harness import aws_run, container_definitions, granted_actions, role_policy, run_with
from tests.infra.conftest import PROJECT

STACKS = ["dev", "prod"]
TARGET = "aws:appautoscaling/target:Target"
POLICY = "aws:appautoscaling/policy:Policy"
SERVICE = "aws:ecs/service:Service"
MOCK_SUFFIX = "-0a1b2c3"  # what the mocks append to an autonamed resource


def api_shape(value):
    """Pulumi's camelCase inputs as the API's PascalCase request (the provider's mapping for these); the
    engine carries every number as a float, the provider sends integer fields as integers."""
    if isinstance(value, dict):
        return {key[0].upper() + key[1:]: api_shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [api_shape(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def validation_errors(operation: str, request: dict) -> str:
    model = botocore.session.get_session().get_service_model("application-autoscaling")
    report = ParamValidator().validate(request, model.operation_model(operation).input_shape)
    return report.generate_report() if report.has_errors() else ""


def tracking_policy(run):
    (policy,) = [p for p in run.of_type(POLICY) if p.input("policyType") == "TargetTrackingScaling"]
    return policy


def put_scaling_policy_request(policy) -> dict:
    return {
        "PolicyName": policy.name,
        "ServiceNamespace": policy.input("serviceNamespace"),
        "ResourceId": policy.input("resourceId"),
        "ScalableDimension": policy.input("scalableDimension"),
        "PolicyType": policy.input("policyType"),
        "TargetTrackingScalingPolicyConfiguration": api_shape(
            policy.input("targetTrackingScalingPolicyConfiguration")
        ),
    }


def tracking(run) -> dict:
    return tracking_policy(run).input("targetTrackingScalingPolicyConfiguration")


def runtime_env(run) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container_definitions(run)["runtime"]["environment"]}


@pytest.mark.parametrize("stack", STACKS)
def test_the_scalable_target_is_the_services_task_count_within_the_stacks_bounds(stack):
    run = aws_run(stack)
    target = run.one(TARGET)
    cluster = run.one("aws:ecs/cluster:Cluster")
    service = run.one(SERVICE)
    assert target.input("serviceNamespace") == "ecs"
    assert target.input("scalableDimension") == "ecs:service:DesiredCount"
    assert target.input("resourceId") == f"service/{cluster.name}{MOCK_SUFFIX}/{service.name}{MOCK_SUFFIX}"
    assert (target.input("minCapacity"), target.input("maxCapacity")) == {"dev": (0, 1), "prod": (2, 5)}[
        stack
    ]
    request = api_shape(
        {
            key: target.input(key)
            for key in ("serviceNamespace", "resourceId", "scalableDimension", "minCapacity", "maxCapacity")
        }
    )
    assert validation_errors("RegisterScalableTarget", request) == ""


@pytest.mark.parametrize("stack", STACKS)
def test_the_policy_request_is_one_the_application_autoscaling_api_accepts(stack):
    policy = tracking_policy(aws_run(stack))
    assert policy.input("resourceId") == aws_run(stack).one(TARGET).input("resourceId")
    assert validation_errors("PutScalingPolicy", put_scaling_policy_request(policy)) == ""


def test_the_api_model_check_rejects_a_malformed_metric_query():
    request = put_scaling_policy_request(tracking_policy(aws_run("dev")))
    metrics = request["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]["Metrics"]
    metrics[0]["MetricStat"]["Statistic"] = "Average"  # the step-scaling spelling; target tracking says Stat
    del metrics[1]["Id"]
    errors = validation_errors("PutScalingPolicy", request)
    assert (
        "Unknown parameter in TargetTrackingScalingPolicyConfiguration.CustomizedMetricSpecification"
        in errors
    )
    assert "Missing required parameter in TargetTrackingScalingPolicyConfiguration" in errors


@pytest.mark.parametrize("stack", STACKS)
def test_the_metric_reads_the_runtimes_emf_metrics_by_the_names_the_task_hands_it(stack):
    run = aws_run(stack)
    env = runtime_env(run)
    family = run.one("aws:ecs/taskDefinition:TaskDefinition").input("family")
    assert env["RUNTIME_EMF_NAMESPACE"] == METRIC_NAMESPACE
    assert env["RUNTIME_EMF_SERVICE"] == family
    queries = [m for m in tracking(run)["customizedMetricSpecification"]["metrics"] if "metricStat" in m]
    read = set()
    for query in queries:
        metric = query["metricStat"]["metric"]
        dimensions = {d["name"]: d["value"] for d in metric["dimensions"]}
        assert metric["namespace"] == env["RUNTIME_EMF_NAMESPACE"]
        assert dimensions.keys() == {"Service", "Model"} and dimensions["Service"] == family
        assert query["metricStat"]["stat"] == "Average"  # over the tasks' documents: per task
        assert query["returnData"] is False
        read.add((metric["metricName"], dimensions["Model"]))
    assert read == {(metric, model) for metric in WORK_METRICS for model in MODELS}


def test_the_names_are_the_ones_the_runtime_publishes():
    """docs/interfaces.md is where the runtime's EMF names are fixed; a rename there must fail here."""
    interfaces = (REPO_ROOT / "docs" / "interfaces.md").read_text()
    assert f"default `{METRIC_NAMESPACE}`" in interfaces
    assert "`[Service, Model]`" in interfaces
    for metric in WORK_METRICS:
        assert f"| `{metric}` (`Count`) |" in interfaces
    for model in MODELS:
        assert f"`{model}`" in interfaces


def evaluate(expression: str, values: dict[str, float]) -> float:
    """CloudWatch metric math for the operators the policy may use (+ - * / and ids), as Python does it."""
    node = python_source.parse(expression, mode="eval").body

    def walk(n):
        if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            left, right = walk(n.left), walk(n.right)
            return {ast.Add: left + right, ast.Sub: left - right, ast.Mult: left * right}.get(
                type(n.op), left / right if right else 0.0
            )
        if isinstance(n, ast.Name):
            return values[n.id]
        raise AssertionError(f"unexpected metric math: {ast.dump(n)}")

    return walk(node)


def test_the_metric_math_is_the_work_waiting_per_running_task():
    metrics = tracking(aws_run("prod"))["customizedMetricSpecification"]["metrics"]
    [expression] = [m for m in metrics if "expression" in m]
    assert expression["returnData"] is True
    by_id = {m["id"]: m for m in metrics if "metricStat" in m}
    assert set(re.findall(r"[a-z_]+", expression["expression"])) == set(by_id)
    # Three tasks in one period: per model, each task's QueueDepth and InFlight documents.
    tasks = [
        {"generate": (6, 1), "embed": (2, 1)},
        {"generate": (3, 1), "embed": (0, 0)},
        {"generate": (0, 0), "embed": (0, 0)},  # still loading: reports zeros, holds nothing
    ]
    averages = {}
    for query_id, query in by_id.items():
        metric = query["metricStat"]["metric"]
        model = next(d["value"] for d in metric["dimensions"] if d["name"] == "Model")
        index = WORK_METRICS.index(metric["metricName"])
        averages[query_id] = sum(task[model][index] for task in tasks) / len(tasks)
    waiting = sum(sum(queued + running for queued, running in task.values()) for task in tasks)
    assert evaluate(expression["expression"], averages) == pytest.approx(waiting / len(tasks))


@pytest.mark.parametrize("stack", STACKS)
def test_scale_out_is_quick_and_scale_in_slow(stack):
    config = tracking(aws_run(stack))
    assert config["targetValue"] == 4.0
    assert config["scaleOutCooldown"] == 60 and config["scaleInCooldown"] == 600
    assert config.get("disableScaleIn") in (None, False)  # scale-in is how dev reaches zero


def test_the_target_and_cooldowns_come_from_the_stack_config():
    run = run_with(
        "dev",
        {
            f"{PROJECT}:gpuTargetWorkPerTask": "2",
            f"{PROJECT}:gpuScaleOutCooldownSeconds": "30",
            f"{PROJECT}:gpuScaleInCooldownSeconds": "1800",
            f"{PROJECT}:gpuMinTasks": "1",
            f"{PROJECT}:gpuMaxTasks": "3",
            f"{PROJECT}:gpuMaxInstances": "4",
        },
    )
    config = tracking(run)
    assert (config["targetValue"], config["scaleOutCooldown"], config["scaleInCooldown"]) == (2.0, 30, 1800)
    target = run.one(TARGET)
    assert (target.input("minCapacity"), target.input("maxCapacity")) == (1, 3)
    assert run.one(SERVICE).input("desiredCount") == 1
    assert run.one("aws:autoscaling/group:Group").input("maxSize") == 4


@pytest.mark.parametrize("stack", STACKS)
def test_a_deploy_leaves_the_task_count_to_auto_scaling(stack):
    service = aws_run(stack).one(SERVICE)
    assert service.ignore_changes == ["desiredCount"]
    assert service.input("desiredCount") == aws_run(stack).one(TARGET).input("minCapacity")


@pytest.mark.parametrize("stack", STACKS)
def test_the_instances_can_hold_the_most_tasks_and_follow_them(stack):
    run = aws_run(stack)
    group = run.one("aws:autoscaling/group:Group")
    assert group.input("maxSize") >= run.one(TARGET).input("maxCapacity") + 1
    scaling = run.one("aws:ecs/capacityProvider:CapacityProvider").input("autoScalingGroupProvider")
    assert scaling["managedScaling"]["status"] == "ENABLED"
    # Instances running tasks are not scaled in under them; drained ones move their tasks first.
    assert scaling["managedTerminationProtection"] == "ENABLED"
    assert scaling["managedDraining"] == "ENABLED"


@pytest.mark.parametrize("stack", STACKS)
def test_the_task_role_lets_the_runtime_set_only_its_own_scale_in_protection(stack):
    run = aws_run(stack)
    task = run.one("aws:ecs/taskDefinition:TaskDefinition")
    (role,) = [r for r in run.of_type("aws:iam/role:Role") if r.name.endswith("-task")]
    assert task.input("taskRoleArn") == f"arn:aws:iam::123456789012:role/{role.name}{MOCK_SUFFIX}"
    assert json.loads(role.input("assumeRolePolicy"))["Statement"][0]["Principal"] == {
        "Service": "ecs-tasks.amazonaws.com"
    }
    policy = role_policy(run, "-task")
    assert granted_actions(policy) == {"ecs:UpdateTaskProtection", "ecs:GetTaskProtection"}
    cluster = run.one("aws:ecs/cluster:Cluster").name + MOCK_SUFFIX
    assert {s["Resource"] for s in policy["Statement"]} == {
        f"arn:aws:ecs:us-east-1:123456789012:task/{cluster}/*"
    }


@pytest.mark.parametrize("stack", STACKS)
def test_a_stopping_task_drains_its_tunnel_then_its_runtime_within_the_stop_timeouts(stack):
    containers = container_definitions(aws_run(stack))
    runtime, cloudflared = containers["runtime"], containers["cloudflared"]
    drain = int(runtime_env(aws_run(stack))["RUNTIME_DRAIN_SECONDS"])
    command = cloudflared["command"]
    grace = int(command[command.index("--grace-period") + 1].removesuffix("s"))
    # cloudflared depends on the runtime, so ECS stops it first: its grace finishes the requests in flight.
    assert cloudflared["dependsOn"][0]["containerName"] == "runtime"
    assert grace == drain
    for container, needed in ((runtime, drain), (cloudflared, grace)):
        assert needed < container["stopTimeout"] <= 120


def test_a_stack_file_with_the_retired_desired_count_fails_with_the_fix():
    with pytest.raises(ConfigError) as caught:
        run_with("dev", {f"{PROJECT}:gpuDesiredTasks": "1"})
    message = str(caught.value)
    assert message.startswith(f"config {PROJECT}:gpuDesiredTasks: is retired")
    assert f"pulumi config rm {PROJECT}:gpuDesiredTasks" in message
    assert f"{PROJECT}:gpuMinTasks" in message and f"{PROJECT}:gpuMaxTasks" in message
