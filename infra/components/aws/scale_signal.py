"""The credential the Worker signs its scale-from-zero signal with: an IAM user that may do one thing, put
metric data into the SteadyText/Edge namespace (an IAM condition on `cloudwatch:namespace`;
PutMetricData has no resource type, so the namespace is the only scope there is). Its key reaches the
Worker only as secret bindings. Declared only for stacks that scale to zero (gpuMinTasks 0)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.components.aws.iam import POLICY_VERSION

# The Worker's side of these names: edge/src/origin/scalesignal.ts (SIGNAL_NAMESPACE, SIGNAL_METRIC).
SIGNAL_NAMESPACE = "SteadyText/Edge"
SIGNAL_METRIC = "ColdMisses"


def signal_policy() -> dict:
    return {
        "Version": POLICY_VERSION,
        "Statement": [
            {
                "Sid": "PutScaleSignalOnly",
                "Effect": "Allow",
                "Action": "cloudwatch:PutMetricData",
                "Resource": "*",
                "Condition": {"StringEquals": {"cloudwatch:namespace": SIGNAL_NAMESPACE}},
            }
        ],
    }


@dataclass(frozen=True)
class ScaleSignalArgs:
    tags: dict[str, str] = field(default_factory=dict)


class ScaleSignal(pulumi.ComponentResource):
    access_key_id: pulumi.Output[str]
    secret_access_key: pulumi.Output[str]

    def __init__(self, name: str, args: ScaleSignalArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("steadytext:aws:ScaleSignal", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        user = aws.iam.User(f"{name}-scale-signal", tags=args.tags, opts=child)
        aws.iam.UserPolicy(
            f"{name}-scale-signal", user=user.name, policy=json.dumps(signal_policy()), opts=child
        )
        key = aws.iam.AccessKey(f"{name}-scale-signal", user=user.name, opts=child)
        # Half a credential is not a plain value either: both halves stay secret.
        self.access_key_id = pulumi.Output.secret(key.id)
        self.secret_access_key = pulumi.Output.secret(key.secret)
        self.register_outputs({})
