"""Resource type tokens and small readers shared by the policies.

Policies see a resource's properties the way the engine sends them: camelCase keys, nested dicts and
lists, and values that are still unknown during a preview. Every reader here tolerates missing keys and
unknown values so that a policy reports only what it can actually see.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyResource, Secret

STACK = "pulumi:pulumi:Stack"

D1_DATABASE = "cloudflare:index/d1Database:D1Database"
KV_NAMESPACE = "cloudflare:index/workersKvNamespace:WorkersKvNamespace"
R2_BUCKET = "cloudflare:index/r2Bucket:R2Bucket"
R2_EVENT_NOTIFICATION = "cloudflare:index/r2BucketEventNotification:R2BucketEventNotification"
QUEUE = "cloudflare:index/queue:Queue"
QUEUE_CONSUMER = "cloudflare:index/queueConsumer:QueueConsumer"
WORKFLOW = "cloudflare:index/workflow:Workflow"
WORKERS_SCRIPT = "cloudflare:index/workersScript:WorkersScript"
ACCESS_APPLICATION = "cloudflare:index/zeroTrustAccessApplication:ZeroTrustAccessApplication"
TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
LOGPUSH_JOB = "cloudflare:index/logpushJob:LogpushJob"

S3_BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
S3_ENCRYPTION = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
S3_PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
S3_ACLS = ("aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2")
S3_BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"

SECURITY_GROUP = "aws:ec2/securityGroup:SecurityGroup"
INGRESS_RULE = "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule"
SECURITY_GROUP_RULE = "aws:ec2/securityGroupRule:SecurityGroupRule"
LAUNCH_TEMPLATE = "aws:ec2/launchTemplate:LaunchTemplate"
EC2_INSTANCE = "aws:ec2/instance:Instance"
ECS_SERVICE = "aws:ecs/service:Service"
SCALABLE_TARGET = "aws:appautoscaling/target:Target"

# NVIDIA/AMD GPU families: g3…g6e, gr6, p2…p6 (and their sizes, e.g. g5.xlarge, p4d.24xlarge).
GPU_INSTANCE_TYPE = re.compile(r"^(g\d+[a-z]*|gr\d+[a-z]*|p\d+[a-z]*)\.[a-z0-9]+$")


def is_gpu_instance_type(value: Any) -> bool:
    return isinstance(value, str) and bool(GPU_INSTANCE_TYPE.match(value))


def of_type(resources: Iterable[PolicyResource], *types: str) -> list[PolicyResource]:
    return [r for r in resources if r.resource_type in types]


def dependencies_of(resource: PolicyResource, *properties: str) -> list[PolicyResource]:
    """The resources whose outputs flow into any of `properties` (how a preview links resources whose
    ids are still unknown)."""
    found: list[PolicyResource] = []
    for prop in properties:
        for dep in resource.property_dependencies.get(prop, []):
            if dep not in found:
                found.append(dep)
    return found


def unwrap(value: Any) -> Any:
    """The value inside a `Secret` (the offline plan keeps secretness; the engine hands plain values)."""
    return value.value if isinstance(value, Secret) else value


def items(value: Any) -> list[Any]:
    """A list property as a list (the engine hands policies read-only sequence proxies); missing is empty."""
    value = unwrap(value)
    return list(value) if isinstance(value, Sequence) and not isinstance(value, str) else []


def mapping(value: Any) -> Mapping[str, Any]:
    """A nested object property; missing or not an object reads as empty."""
    value = unwrap(value)
    return value if isinstance(value, Mapping) else {}


def flag(props: Mapping[str, Any], key: str) -> bool:
    """A boolean property; providers accept "true"/"false" strings in some nested blocks."""
    value = props.get(key)
    return value is True or (isinstance(value, str) and value.lower() == "true")
