"""How long a service at zero tasks takes to answer again: the Retry-After the Worker gives a miss meanwhile.

Nothing here is measured in a cloud (there is none to measure from); each step is an estimate with its
source, and the runtime's own part comes from the start budget (infra/components/aws/start_budget.py),
whose model load was measured locally (docs/infra-aws.md, "Cold start"):

1. the Worker's signal → the scale-from-zero alarm → desired count 1: the alarm has a 60 s period and is
   evaluated once a minute, and a standard-resolution datapoint can arrive in the period after it was put
   (CloudWatch alarm evaluation, "Using Amazon CloudWatch alarms"): up to 2 periods;
2. the task waits in PROVISIONING until ECS managed scaling adds an instance: its CapacityProviderReservation
   alarm scales out after 1 datapoint of 1 minute (AWS, "Deep dive on Amazon ECS cluster auto scaling"),
   then the group launches the instance;
3. instance boot: EC2 launch, Amazon Linux 2023 boot with the NVIDIA driver, and the ECS agent registering;
   the ASG/capacity provider's own warm-up assumption for this is 300 s (`instance_warmup_period`), a
   g5.xlarge usually registers well within it, so half of it;
4. image pull: the CUDA runtime image (nvidia/cuda runtime, several GB uncompressed) from ECR in the same
   region, with extraction bound by the gp3 root volume's baseline 125 MiB/s (EBS gp3 documentation);
5. the task's own start to /readyz: start_budget's `cold_start_s` (fixed runtime boot + the model through
   R2 at `modelStartMibPerSecond`).
"""

from __future__ import annotations

from infra.components.aws.start_budget import StartBudget

SIGNAL_TO_DESIRED_S = 120
CAPACITY_PROVIDER_SCALE_OUT_S = 90
INSTANCE_BOOT_S = 150
IMAGE_PULL_S = 90


def cold_start_seconds(budget: StartBudget) -> int:
    """From the first miss at zero tasks until a task can answer."""
    return (
        SIGNAL_TO_DESIRED_S
        + CAPACITY_PROVIDER_SCALE_OUT_S
        + INSTANCE_BOOT_S
        + IMAGE_PULL_S
        + budget.cold_start_s
    )
