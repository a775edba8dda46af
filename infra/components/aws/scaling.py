"""ECS service auto scaling on the work waiting per task, the signal that matters for an inference server.

The runtime prints CloudWatch EMF documents on stdout (docs/interfaces.md, "Runtime load metrics"): every
interval, per model, `QueueDepth` (accepted, waiting) and `InFlight` (running), with the dimensions
`Service` (the task definition family, which the task definition hands the runtime) and `Model`. The
statistic `Average` over the service's documents is the per-task value, so the sum of the four averages
(two metrics × two models) is the work waiting per running task: the metric target tracking holds at
`target_work_per_task`. A task that is still loading reports zeros, a stopped one reports nothing, so the
average never counts work that no task holds.

Target tracking does nothing on missing data, so a service at zero tasks (no documents) is started by the
scale-from-zero signal instead: a stack with `min_tasks` 0 gets an alarm on the Worker's ColdMisses
datapoints (infra/components/aws/scale_signal.py) that fires only while the service's desired count is
0 (Container Insights' DesiredTaskCount; missing counts as 0, since a service at zero tasks may report
nothing), and a step policy that then sets exactly 1 task. Gating on the desired count, not on running
tasks, means a start already under way (minutes on a cold instance) is not asked for again.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.aws.scale_signal import SIGNAL_METRIC, SIGNAL_NAMESPACE

# The names the runtime publishes under (docs/interfaces.md); the task definition sets the namespace and
# the Service dimension from here, so the emitter and the policy cannot disagree.
METRIC_NAMESPACE = "SteadyText/Runtime"
WORK_METRICS = ("QueueDepth", "InFlight")
MODELS = ("generate", "embed")
WORK_PER_TASK_EXPRESSION_ID = "work_per_task"

ECS_NAMESPACE = "ecs"
DESIRED_COUNT = "ecs:service:DesiredCount"
SIGNAL_PERIOD_S = 60  # standard resolution; the Worker puts at most one datapoint per isolate per period
COLD_MISSES_EXPRESSION = "IF(FILL(desired, 0) < 1, FILL(misses, 0), 0)"


def scalable_resource_id(cluster_name: str, service_name: str) -> str:
    """Application Auto Scaling's id of an ECS service."""
    return f"service/{cluster_name}/{service_name}"


def work_per_task_metrics(emf_service: str) -> list[dict]:
    """The target-tracking customized metric: metric math over the runtime's EMF metrics (Pulumi's shape;
    the API's is the same with capitalised keys)."""
    queries = [
        {
            "id": f"{metric.lower()}_{model}",
            "label": f"{metric} per task ({model})",
            "metric_stat": {
                "metric": {
                    "namespace": METRIC_NAMESPACE,
                    "metric_name": metric,
                    "dimensions": [
                        {"name": "Service", "value": emf_service},
                        {"name": "Model", "value": model},
                    ],
                },
                "stat": "Average",
            },
            "return_data": False,
        }
        for model in MODELS
        for metric in WORK_METRICS
    ]
    expression = {
        "id": WORK_PER_TASK_EXPRESSION_ID,
        "label": "Requests queued or running per task",
        "expression": " + ".join(query["id"] for query in queries),
        "return_data": True,
    }
    return [*queries, expression]


@dataclass(frozen=True)
class ServiceScalingArgs:
    cluster_name: pulumi.Input[str]
    service_name: pulumi.Input[str]
    emf_service: str  # the runtime's `Service` dimension value
    min_tasks: int
    max_tasks: int
    target_work_per_task: int
    scale_out_cooldown_s: int
    scale_in_cooldown_s: int
    cold_start_s: int  # from the first miss at zero tasks until a task answers (cold_start.py)


def cold_miss_queries(emf_service: str, cluster_name: str, service_name: str) -> list[dict]:
    """The scale-from-zero alarm's metric math (Pulumi's MetricAlarm.metric_queries shape)."""
    return [
        {
            "id": "misses",
            "metric": {
                "namespace": SIGNAL_NAMESPACE,
                "metric_name": SIGNAL_METRIC,
                "dimensions": {"Service": emf_service},
                "period": SIGNAL_PERIOD_S,
                "stat": "Sum",
            },
            "return_data": False,
        },
        {
            "id": "desired",
            "metric": {
                "namespace": "ECS/ContainerInsights",
                "metric_name": "DesiredTaskCount",
                "dimensions": {"ClusterName": cluster_name, "ServiceName": service_name},
                "period": SIGNAL_PERIOD_S,
                "stat": "Maximum",
            },
            "return_data": False,
        },
        {
            "id": "cold_misses",
            "label": "Misses while the service has no task",
            "expression": COLD_MISSES_EXPRESSION,
            "return_data": True,
        },
    ]


class ServiceScaling(pulumi.ComponentResource):
    target: aws.appautoscaling.Target
    resource_id: pulumi.Output[str]

    def __init__(
        self, name: str, args: ServiceScalingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("steadytext:aws:ServiceScaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        # No role_arn: Application Auto Scaling uses its ECS service-linked role (created on first use).
        self.target = aws.appautoscaling.Target(
            f"{name}-tasks",
            service_namespace=ECS_NAMESPACE,
            scalable_dimension=DESIRED_COUNT,
            resource_id=pulumi.Output.all(args.cluster_name, args.service_name).apply(
                lambda names: scalable_resource_id(*names)
            ),
            min_capacity=args.min_tasks,
            max_capacity=args.max_tasks,
            opts=child,
        )
        self.resource_id = self.target.resource_id
        aws.appautoscaling.Policy(
            f"{name}-work-per-task",
            policy_type="TargetTrackingScaling",
            service_namespace=self.target.service_namespace,
            scalable_dimension=self.target.scalable_dimension,
            resource_id=self.target.resource_id,
            target_tracking_scaling_policy_configuration={
                "target_value": float(args.target_work_per_task),
                # Quick out: waiting requests are latency now. Slow in: a GPU task takes minutes to return.
                "scale_out_cooldown": args.scale_out_cooldown_s,
                "scale_in_cooldown": args.scale_in_cooldown_s,
                "customized_metric_specification": {"metrics": work_per_task_metrics(args.emf_service)},
            },
            opts=child,
        )
        if args.min_tasks == 0:
            self._scale_from_zero(name, args, child)
        self.register_outputs({"resource_id": self.resource_id})

    def _scale_from_zero(self, name: str, args: ServiceScalingArgs, child: pulumi.ResourceOptions) -> None:
        start_one = aws.appautoscaling.Policy(
            f"{name}-from-zero",
            policy_type="StepScaling",
            service_namespace=self.target.service_namespace,
            scalable_dimension=self.target.scalable_dimension,
            resource_id=self.target.resource_id,
            step_scaling_policy_configuration={
                # Exactly 1, however often the alarm fires: never more than a cold start needs.
                "adjustment_type": "ExactCapacity",
                "cooldown": args.cold_start_s,
                "metric_aggregation_type": "Maximum",
                "step_adjustments": [{"metric_interval_lower_bound": "0", "scaling_adjustment": 1}],
            },
            opts=child,
        )
        aws.cloudwatch.MetricAlarm(
            f"{name}-cold-misses",
            alarm_description="A request missed the cache while the GPU service had no task: start one",
            comparison_operator="GreaterThanOrEqualToThreshold",
            threshold=1,
            evaluation_periods=1,
            datapoints_to_alarm=1,
            treat_missing_data="notBreaching",
            metric_queries=pulumi.Output.all(args.cluster_name, args.service_name).apply(
                lambda names: cold_miss_queries(args.emf_service, *names)
            ),
            alarm_actions=[start_one.arn],
            opts=child,
        )
