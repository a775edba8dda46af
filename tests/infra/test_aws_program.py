"""The whole program (Cloudflare + AWS) under mocks: the Cloudflare side's tunnel token and model artifact
reach the GPU task, the AWS exports are there and plain, and every AWS resource sits in an AWS component."""

from __future__ import annotations

import json

from tests.infra.conftest import TEST_SECRETS, plaintext_leaks

AWS_EXPORTS = ("imageDigest", "ecsClusterName", "ecsServiceName", "logGroupName", "auditBucket")


def runtime_environment(run) -> dict[str, str]:
    definitions = json.loads(run.one("aws:ecs/taskDefinition:TaskDefinition").input("containerDefinitions"))
    runtime = next(c for c in definitions if c["name"] == "runtime")
    return {item["name"]: item["value"] for item in runtime["environment"]}


def test_the_tunnel_token_reaches_cloudflared_only_through_secrets_manager(stack_run):
    token = stack_run.outputs["tunnelToken"]
    assert token.startswith("SECRET-tunnel-token-")
    definitions = json.loads(
        stack_run.one("aws:ecs/taskDefinition:TaskDefinition").input("containerDefinitions")
    )
    (reference,) = next(c for c in definitions if c["name"] == "cloudflared")["secrets"]
    (version,) = [
        v
        for v in stack_run.of_type("aws:secretsmanager/secretVersion:SecretVersion")
        if v.input("secretId") == reference["valueFrom"]
    ]
    assert version.input("secretString") == token
    for resource in stack_run.resources:
        if resource.type.startswith("aws:"):
            assert plaintext_leaks(resource.inputs, [token, *TEST_SECRETS.values()]) == [], resource.name


def test_the_task_serves_the_model_the_cloudflare_side_uploaded(stack_run):
    env = runtime_environment(stack_run)
    assert env["RUNTIME_MODEL_URL"] == stack_run.outputs["modelUrl"]
    assert env["RUNTIME_MODEL_URL"].startswith(f"s3://{stack_run.outputs['modelsBucket']}/")
    assert env["RUNTIME_MODEL_SHA256"] == stack_run.outputs["modelSha256"]
    # The tunnel forwards to http://localhost:<originPort>: the runtime listens exactly there.
    ingress = stack_run.one(
        "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
    )
    services = [rule["service"] for rule in ingress.input("config")["ingresses"]]
    assert f"http://localhost:{env['RUNTIME_PORT']}" in services


def test_the_aws_exports_are_present_and_plain(stack_run):
    for name in AWS_EXPORTS:
        assert stack_run.outputs[name], name
        assert name not in stack_run.secret_outputs
    assert stack_run.outputs["imageDigest"].startswith("sha256:")
    assert stack_run.outputs["logGroupName"].startswith("/ecs/steadytext-")


def test_every_aws_resource_belongs_to_an_aws_component(stack_run):
    components = {r.urn: r.type for r in stack_run.resources if not r.custom}
    assert {
        "steadytext:aws:GpuNetwork",
        "steadytext:aws:GpuCapacity",
        "steadytext:aws:RuntimeImage",
        "steadytext:aws:GpuService",
        "steadytext:aws:AuditLogging",
    } <= set(components.values())
    aws_resources = [
        r for r in stack_run.resources if r.custom and r.type.startswith(("aws:", "docker-build:"))
    ]
    assert aws_resources
    for resource in aws_resources:
        assert components.get(resource.parent, "").startswith("steadytext:aws:"), resource.name


# The components the program declares directly used to be children of a `GpuOrigin` component (and the
# service was called `InferenceService`). The URNs a deployed stack has for them, as the engine wrote them:
# a root-level component's URN carries no Stack type.
FORMER_URNS = {
    "steadytext:aws:GpuNetwork": "steadytext:aws:GpuOrigin$steadytext:aws:GpuNetwork",
    "steadytext:aws:RuntimeImage": "steadytext:aws:GpuOrigin$steadytext:aws:RuntimeImage",
    "steadytext:aws:SidecarImage": "steadytext:aws:GpuOrigin$steadytext:aws:SidecarImage",
    "steadytext:aws:GpuCapacity": "steadytext:aws:GpuOrigin$steadytext:aws:GpuCapacity",
    "steadytext:aws:GpuService": "steadytext:aws:GpuOrigin$steadytext:aws:InferenceService",
    "steadytext:aws:ServiceScaling": "steadytext:aws:GpuOrigin$steadytext:aws:ServiceScaling",
}


def aliased_urn(stack: str, resource, spec: dict) -> str:
    """The URN an alias spec names: the resource's own name and type unless the spec says otherwise, under
    the spec's parent (the engine's rule)."""
    parent_types = spec["parentUrn"].split("::")[2]
    return (
        f"urn:pulumi:{stack}::steadytext-edge::{parent_types}${spec.get('type', resource.type)}"
        f"::{spec.get('name', resource.name)}"
    )


def test_a_deployed_stack_keeps_its_gpu_resources_through_aliases(stack_run):
    """Without these aliases `pulumi up` on a stack deployed before would replace the network, the images,
    the GPU capacity and the ECS service (every child's URN changes with its parent's)."""
    for resource_type, former in FORMER_URNS.items():
        resource = stack_run.one(resource_type)
        stack = resource.urn.split("::")[0].removeprefix("urn:pulumi:")
        assert resource.parent.endswith("pulumi:pulumi:Stack::steadytext-edge-" + stack), resource.parent
        aliases = [aliased_urn(stack, resource, alias["spec"]) for alias in resource.aliases]
        assert aliases == [f"urn:pulumi:{stack}::steadytext-edge::{former}::{resource.name}"], resource_type
    assert stack_run.of_type("steadytext:aws:GpuOrigin") == []
