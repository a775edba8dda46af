"""What AWS (and the Logpush challenge) would compute for the resources and invokes the AWS side uses.

Merged into the harness's COMPUTED_OUTPUTS / INVOKE_RESULTS by pulumi_offline/__init__.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockResourceArgs

TEST_AWS_ACCOUNT = "123456789012"
TEST_REGION = "us-east-1"
TEST_AMI = "ami-0gpu0123456789abc"
TEST_ZONES = ["us-east-1a", "us-east-1b", "us-east-1c"]
# Not every AZ offers every GPU type: here the region's first AZ offers none of them.
GPU_ZONES = ["us-east-1b", "us-east-1c"]
# Existing subnets (subnetIds) and their AZs; any other subnet id is in GPU_ZONES[0].
SUBNET_ZONES = {"subnet-0aaaaaaaaaaaaaaaa": "us-east-1a"}


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{TEST_REGION}:{TEST_AWS_ACCOUNT}:{resource}"


def digest_of(name: str) -> str:
    return "sha256:" + hashlib.sha256(name.encode()).hexdigest()


def challenge_token_for(key: str) -> str:
    """The token Cloudflare would have written into the challenge file at `key`."""
    return "CHALLENGE-" + hashlib.sha256(key.encode()).hexdigest()[:24]


def challenge_token_outputs(args: MockResourceArgs) -> dict:
    """What the ChallengeToken dynamic resource reads from the challenge file when it is created."""
    from infra.components.cloudflare.logpush_challenge import challenge_object_key

    key = challenge_object_key(args.inputs["bucket"], args.inputs["filename"])
    return {"key": key, "token": challenge_token_for(key)}


def _named(service: str, kind: str) -> Callable[[MockResourceArgs], dict]:
    """Autonamed resources: the provider picks the name, the ARN follows from it."""

    def outputs(args: MockResourceArgs) -> dict:
        name = args.inputs.get("name") or f"{args.name}-0a1b2c3"
        return {"name": name, "arn": _arn(service, f"{kind}/{name}")}

    return outputs


def _repository(args: MockResourceArgs) -> dict:
    name = args.inputs.get("name") or f"{args.name}-0a1b2c3"
    return {
        "name": name,
        "arn": _arn("ecr", f"repository/{name}"),
        "registryId": TEST_AWS_ACCOUNT,
        "repositoryUrl": f"{TEST_AWS_ACCOUNT}.dkr.ecr.{TEST_REGION}.amazonaws.com/{name}",
    }


def _image(args: MockResourceArgs) -> dict:
    digest = digest_of(args.name)
    return {"digest": digest, "ref": f"{args.inputs['tags'][0]}@{digest}"}


def _bucket(args: MockResourceArgs) -> dict:
    bucket = f"{args.name}-0a1b2c3"
    return {"bucket": bucket, "arn": f"arn:aws:s3:::{bucket}"}


def _challenge(args: MockResourceArgs) -> dict:
    # Cloudflare writes the file into the destination's folder (the {DATE} placeholder expanded).
    destination = args.inputs["destinationConf"]  # the SDK marks it secret (it may hold credentials)
    if rpc.is_rpc_secret(destination):
        destination = rpc.unwrap_rpc_secret(destination)
    path = destination.split("://", 1)[1].split("?", 1)[0].split("/", 1)[1]
    folder = path.replace("{DATE}", "20261123")
    return {
        "filename": f"{folder}/ownership-challenge-{hashlib.sha256(path.encode()).hexdigest()[:8]}.txt",
        "valid": True,
        "message": "",
    }


def _offerings(args: dict) -> dict:
    """EC2 DescribeInstanceTypeOfferings by AZ: every (instance type, AZ) pair offered."""
    types = [value for f in args.get("filters", []) if f["name"] == "instance-type" for value in f["values"]]
    pairs = [(kind, zone) for kind in types for zone in GPU_ZONES]
    return {
        "id": TEST_REGION,
        "locationType": args.get("locationType"),
        "filters": args.get("filters"),
        "instanceTypes": [kind for kind, _ in pairs],
        "locations": [zone for _, zone in pairs],
        "locationTypes": ["availability-zone"] * len(pairs),
    }


AWS_COMPUTED_OUTPUTS: dict[str, Callable[[MockResourceArgs], dict]] = {
    "aws:ecs/cluster:Cluster": _named("ecs", "cluster"),
    "aws:ecs/capacityProvider:CapacityProvider": _named("ecs", "capacity-provider"),
    "aws:ecs/service:Service": _named("ecs", "service"),
    "aws:ecs/taskDefinition:TaskDefinition": lambda a: {
        "arn": _arn("ecs", f"task-definition/{a.inputs['family']}:1"),
        "revision": 1,
    },
    "aws:autoscaling/group:Group": _named("autoscaling", "autoScalingGroup"),
    "aws:appautoscaling/policy:Policy": lambda a: {
        "arn": _arn(
            "autoscaling",
            f"scalingPolicy:0a1b2c3d:resource/{a.inputs['resourceId']}:policyName/{a.name}",
        )
    },
    # EC2 makes a new version for every change; here a new template content gives a new version number.
    "aws:ec2/launchTemplate:LaunchTemplate": lambda a: {
        "latestVersion": 1 + int(hashlib.sha256(repr(sorted(a.inputs.items())).encode()).hexdigest()[:6], 16)
    },
    "aws:iam/role:Role": lambda a: {
        "name": f"{a.name}-0a1b2c3",
        "arn": f"arn:aws:iam::{TEST_AWS_ACCOUNT}:role/{a.name}-0a1b2c3",
    },
    "aws:iam/user:User": lambda a: {
        "name": f"{a.name}-0a1b2c3",
        "arn": f"arn:aws:iam::{TEST_AWS_ACCOUNT}:user/{a.name}-0a1b2c3",
    },
    # The key's secret half shares the harness's SECRET- prefix, so leak checks find it anywhere plain.
    "aws:iam/accessKey:AccessKey": lambda a: {
        "secret": f"SECRET-{a.name}-secret-access-key",
        "status": "Active",
    },
    "aws:iam/instanceProfile:InstanceProfile": lambda a: {
        "arn": f"arn:aws:iam::{TEST_AWS_ACCOUNT}:instance-profile/{a.name}-0a1b2c3"
    },
    "aws:secretsmanager/secret:Secret": lambda a: {
        "arn": _arn(
            "secretsmanager",
            f"secret:{a.inputs.get('name') or a.inputs.get('namePrefix', f'{a.name}-')[:-1]}-AbCdEf",
        )
    },
    # A new value makes a new version (Secrets Manager's PutSecretValue).
    "aws:secretsmanager/secretVersion:SecretVersion": lambda a: {
        "versionId": hashlib.sha256(f"{a.name}={a.inputs.get('secretString')!r}".encode()).hexdigest()[:32]
    },
    "aws:cloudwatch/logGroup:LogGroup": lambda a: {"arn": _arn("logs", f"log-group:{a.inputs['name']}")},
    "aws:ecr/repository:Repository": _repository,
    "aws:ecr/pullThroughCacheRule:PullThroughCacheRule": lambda a: {"registryId": TEST_AWS_ACCOUNT},
    "docker-build:index:Image": _image,
    "aws:s3/bucket:Bucket": _bucket,
    "cloudflare:index/logpushOwnershipChallenge:LogpushOwnershipChallenge": _challenge,
}

AWS_INVOKE_RESULTS: dict[str, Callable[[dict], dict]] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": lambda args: {
        "names": TEST_ZONES,
        "zoneIds": [f"use1-az{i}" for i in range(len(TEST_ZONES))],
        "id": TEST_REGION,
    },
    "aws:ec2/getInstanceTypeOfferings:getInstanceTypeOfferings": lambda args: _offerings(args),
    "aws:ec2/getSubnet:getSubnet": lambda args: {
        "id": args["id"],
        "availabilityZone": SUBNET_ZONES.get(args["id"], GPU_ZONES[0]),
        "vpcId": "vpc-0123456789abcdef0",
    },
    "aws:ssm/getParameter:getParameter": lambda args: {
        "name": args["name"],
        # The provider marks `value` sensitive whatever the parameter's type (its docstring says so).
        "value": {rpc._special_sig_key: rpc._special_secret_sig, "value": TEST_AMI},
        "insecureValue": TEST_AMI,
        "type": "String",
        "version": 1,
        "arn": _arn("ssm", f"parameter{args['name']}"),
        "id": args["name"],
        "withDecryption": True,
    },
}
