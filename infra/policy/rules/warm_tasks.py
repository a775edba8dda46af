"""Prod keeps GPU tasks warm: auto scaling may not take the inference service below a minimum (2 in prod,
so one task or instance lost still leaves one serving; dev may scale to zero)."""

from __future__ import annotations

from pulumi_policy import PolicyConfigSchema, ReportViolation, StackValidationArgs, StackValidationPolicy

from infra.policy.model import ECS_SERVICE, SCALABLE_TARGET, dependencies_of, of_type

ECS_DESIRED_COUNT = "ecs:service:DesiredCount"
# Mandatory-level guardrail for prod; infra.policy.enforcement sets 0 for stacks that may scale to zero.
MINIMUM_TASKS_DEFAULT = 2


def validate(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    minimum = args.get_config().get("minimumTasks", MINIMUM_TASKS_DEFAULT)
    if minimum <= 0:
        return
    scaled = set()
    for target in of_type(args.resources, SCALABLE_TARGET):
        if target.props.get("scalableDimension") != ECS_DESIRED_COUNT:
            continue
        scaled.update(service.urn for service in dependencies_of(target, "resourceId"))
        floor = target.props.get("minCapacity")
        if not isinstance(floor, (int, float)) or floor < minimum:
            report_violation(
                f"auto scaling target '{target.name}' lets the inference service scale down to {floor} "
                f"task(s); this stack keeps at least {minimum} (gpuMinTasks)",
                target.urn,
            )
    for service in of_type(args.resources, ECS_SERVICE):
        if service.urn in scaled:
            continue
        count = service.props.get("desiredCount")
        if not isinstance(count, (int, float)) or count < minimum:
            report_violation(
                f"ECS service '{service.name}' runs {count} task(s) and no auto scaling target keeps a "
                f"minimum; this stack keeps at least {minimum}",
                service.urn,
            )


gpu_tasks_stay_warm = StackValidationPolicy(
    name="gpu-tasks-stay-warm",
    description="The inference service keeps a minimum of running tasks (2 in prod) under auto scaling.",
    config_schema=PolicyConfigSchema(
        properties={"minimumTasks": {"type": "integer", "minimum": 0, "default": MINIMUM_TASKS_DEFAULT}}
    ),
    validate=validate,
)
