"""GPU capacity: ECS GPU-optimized AMI from its SSM parameter, agent config, an auto-scaling group that ECS
scales (dev down to zero, prod never below its minimum), and a service that rolls back failed deploys."""

from __future__ import annotations

import base64

import botocore.session
import pytest
from botocore.validate import ParamValidator

from pulumi_offline import aws as mocks_aws
from pulumi_offline.aws import TEST_AMI
from tests.infra.aws_harness import AL2_GPU_AMI_PARAMETER, aws_run, custom_run, run_with
from tests.infra.conftest import PROJECT

STACKS = ["dev", "prod"]


@pytest.mark.parametrize("stack", STACKS)
def test_instances_boot_the_gpu_ami_named_by_its_ssm_parameter(stack):
    run = aws_run(stack)
    template = run.one("aws:ec2/launchTemplate:LaunchTemplate")
    lookups = [
        args["name"] for token, args in run.invocations if token == "aws:ssm/getParameter:getParameter"
    ]
    assert lookups == ["/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"]
    assert template.input("imageId") == TEST_AMI
    assert template.input("instanceType") == "g5.xlarge"
    assert template.input("metadataOptions")["httpTokens"] == "required"
    root = template.input("blockDeviceMappings")[0]["ebs"]
    assert root["encrypted"] == "true" and root["volumeType"] == "gp3"


def test_the_ami_parameter_and_instance_type_come_from_config():
    run = custom_run()
    lookups = [a["name"] for t, a in run.invocations if t == "aws:ssm/getParameter:getParameter"]
    assert lookups == [AL2_GPU_AMI_PARAMETER]
    assert run.one("aws:ec2/launchTemplate:LaunchTemplate").input("instanceType") == "g6.2xlarge"


@pytest.mark.parametrize("stack", STACKS)
def test_user_data_joins_this_cluster_with_gpus_and_blocks_task_access_to_imds(stack):
    run = aws_run(stack)
    cluster = run.one("aws:ecs/cluster:Cluster")
    user_data = base64.b64decode(run.one("aws:ec2/launchTemplate:LaunchTemplate").input("userData")).decode()
    settings = dict(line.split("=", 1) for line in user_data.splitlines() if line.startswith("ECS_"))
    assert settings["ECS_CLUSTER"] == f"{cluster.name}-0a1b2c3"
    assert settings["ECS_ENABLE_GPU_SUPPORT"] == "true"
    assert settings["ECS_AWSVPC_BLOCK_IMDS"] == "true"
    # Logs are written with the execution role, which alone holds the CloudWatch Logs grant.
    assert settings["ECS_ENABLE_AWSLOGS_EXECUTIONROLE_OVERRIDE"] == "true"
    assert "cat >> /etc/ecs/ecs.config" in user_data


def test_dev_can_scale_to_zero_while_prod_keeps_a_minimum():
    dev = aws_run("dev").one("aws:autoscaling/group:Group")
    prod = aws_run("prod").one("aws:autoscaling/group:Group")
    assert dev.input("minSize") == 0
    assert prod.input("minSize") >= 1
    assert prod.input("maxSize") >= prod.input("minSize")
    # One GPU instance per task, plus one so a rolling deploy at full scale starts a new task first.
    prod_tasks = aws_run("prod").one("aws:appautoscaling/target:Target")
    assert prod.input("maxSize") >= prod_tasks.input("maxCapacity") + 1


@pytest.mark.parametrize("stack", STACKS)
def test_ecs_owns_the_scaling_through_a_managed_capacity_provider(stack):
    run = aws_run(stack)
    group = run.one("aws:autoscaling/group:Group")
    assert group.input("protectFromScaleIn") is True
    assert {"key": "AmazonECSManaged", "value": "true", "propagateAtLaunch": True} in group.input("tags")
    provider = run.one("aws:ecs/capacityProvider:CapacityProvider")
    settings = provider.input("autoScalingGroupProvider")
    assert (
        settings["autoScalingGroupArn"]
        == f"arn:aws:autoscaling:us-east-1:123456789012:autoScalingGroup/{group.name}-0a1b2c3"
    )
    assert settings["managedScaling"]["status"] == "ENABLED"
    assert settings["managedScaling"]["targetCapacity"] == 100
    assert settings["managedTerminationProtection"] == "ENABLED"
    association = run.one("aws:ecs/clusterCapacityProviders:ClusterCapacityProviders")
    provider_name = f"{provider.name}-0a1b2c3"
    assert association.input("capacityProviders") == [provider_name]
    service = run.one("aws:ecs/service:Service")
    assert service.input("capacityProviderStrategies") == [{"capacityProvider": provider_name, "weight": 1}]
    # The service is declared after the association, so it never names a provider the cluster lacks.
    assert association.urn in service.dependencies


@pytest.mark.parametrize("stack", STACKS)
def test_a_failed_deploy_rolls_back(stack):
    service = aws_run(stack).one("aws:ecs/service:Service")
    assert service.input("deploymentCircuitBreaker") == {"enable": True, "rollback": True}
    assert service.input("desiredCount") == {"dev": 0, "prod": 2}[stack]  # then auto scaling owns it
    assert service.input("taskDefinition").startswith("arn:aws:ecs:us-east-1:123456789012:task-definition/")


def test_a_new_secret_value_rolls_the_tasks():
    """ECS resolves secrets only at task start, so the service's redeploy trigger follows the versions."""
    before = aws_run("dev").one("aws:ecs/service:Service")
    after = run_with("dev", {f"{PROJECT}:originToken": "SECRET-rotated-origin-token"}).one(
        "aws:ecs/service:Service"
    )
    assert before.input("forceNewDeployment") is True
    versions = before.input("triggers")["secret_versions"].split(",")
    assert len(versions) == 4 and all(versions)
    changed = set(after.input("triggers")["secret_versions"].split(",")) ^ set(versions)
    assert len(changed) == 2  # exactly the origin token's version was replaced


@pytest.mark.parametrize("stack", STACKS)
def test_the_ami_id_is_not_a_secret_in_the_launch_template(stack):
    """The provider marks the SSM lookup's `value` sensitive (the mock does too), which would make the AMI id
    and every launch-template diff show as [secret]; the public AMI id must stay readable."""
    image_id = aws_run(stack).one("aws:ec2/launchTemplate:LaunchTemplate").inputs["imageId"]
    assert image_id == TEST_AMI  # not wrapped as a secret


def autoscaling_validation_errors(preferences: dict) -> str:
    """botocore's StartInstanceRefresh check of the preferences (in the API's names), plus the enum values
    its model lists, which the client-side validator does not check."""
    model = botocore.session.get_session().get_service_model("autoscaling")
    shape = model.operation_model("StartInstanceRefresh").input_shape
    request = {"AutoScalingGroupName": "g", "Strategy": "Rolling", "Preferences": preferences}
    report = ParamValidator().validate(request, shape)
    errors = [report.generate_report()] if report.has_errors() else []
    members = shape.members["Preferences"].members
    for name, value in preferences.items():
        allowed = getattr(members[name], "enum", []) if name in members else []
        if allowed and value not in allowed:
            errors.append(f"{name}: {value!r} is not one of {allowed}")
    return "\n".join(errors)


@pytest.mark.parametrize("stack", STACKS)
def test_instances_are_replaced_one_by_one_when_the_launch_template_changes(stack):
    group = aws_run(stack).one("aws:autoscaling/group:Group")
    refresh = group.input("instanceRefresh")
    assert refresh["strategy"] == "Rolling"
    preferences = refresh["preferences"]
    # New capacity first; and instances running tasks are scale-in protected by ECS, which a refresh skips
    # unless told otherwise.
    assert (preferences["minHealthyPercentage"], preferences["maxHealthyPercentage"]) == (100, 200)
    assert preferences["scaleInProtectedInstances"] == "Refresh"
    api = {
        "MinHealthyPercentage": int(preferences["minHealthyPercentage"]),
        "MaxHealthyPercentage": int(preferences["maxHealthyPercentage"]),
        "InstanceWarmup": int(preferences["instanceWarmup"]),
        "SkipMatching": preferences["skipMatching"],
        "ScaleInProtectedInstances": preferences["scaleInProtectedInstances"],
        "StandbyInstances": preferences["standbyInstances"],
    }
    assert autoscaling_validation_errors(api) == ""
    assert "Refreshed" in autoscaling_validation_errors({**api, "ScaleInProtectedInstances": "Refreshed"})


def test_a_new_gpu_ami_starts_an_instance_refresh(monkeypatch):
    """The refresh starts when the group's launch_template changes, which needs the explicit version (with
    "$Latest" nothing changes in the group): a new AMI → a new template version → a new group input."""
    before = aws_run("prod")
    monkeypatch.setattr(mocks_aws, "TEST_AMI", "ami-0patched0123456789")
    after = run_with("prod", {})
    template = after.one("aws:ec2/launchTemplate:LaunchTemplate")
    assert template.input("imageId") == "ami-0patched0123456789"
    old_group = before.one("aws:autoscaling/group:Group").input("launchTemplate")
    new_group = after.one("aws:autoscaling/group:Group").input("launchTemplate")
    assert old_group["version"] != new_group["version"] and new_group["version"] != "$Latest"
    assert after.one("aws:autoscaling/group:Group").input("instanceRefresh")["strategy"] == "Rolling"
