from infra.policy.model import ECS_SERVICE, SCALABLE_TARGET
from infra.policy.rules.warm_tasks import gpu_tasks_stay_warm
from tests.policy.conftest import res, violations

SERVICE = res(ECS_SERVICE, "inference", {"desiredCount": 2})


def target(minimum, dimension="ecs:service:DesiredCount"):
    return res(
        SCALABLE_TARGET,
        "tasks",
        {"scalableDimension": dimension, "minCapacity": minimum, "maxCapacity": 5},
        deps={"resourceId": [SERVICE]},
    )


def test_a_minimum_of_two_tasks_passes():
    assert violations(gpu_tasks_stay_warm, SERVICE, target(2)) == []


def test_a_minimum_below_two_fails_naming_the_target_and_the_config_key():
    for minimum in (1, 0):
        [message] = violations(gpu_tasks_stay_warm, SERVICE, target(minimum))
        assert "'tasks'" in message and f"down to {minimum} task(s)" in message and "gpuMinTasks" in message


def test_a_service_without_a_scaling_target_needs_the_minimum_itself():
    [message] = violations(gpu_tasks_stay_warm, res(ECS_SERVICE, "fixed", {"desiredCount": 1}))
    assert "'fixed'" in message and "no auto scaling target" in message
    assert violations(gpu_tasks_stay_warm, res(ECS_SERVICE, "fixed", {"desiredCount": 3})) == []


def test_other_scalable_dimensions_are_not_this_policys_business():
    other = target(0, dimension="dynamodb:table:ReadCapacityUnits")
    assert violations(gpu_tasks_stay_warm, other) == []


def test_a_stack_that_may_scale_to_zero_passes_with_minimum_zero():
    assert violations(gpu_tasks_stay_warm, SERVICE, target(0), config={"minimumTasks": 0}) == []
