"""How long ECS lets the runtime take to become healthy, from the size of the model it must fetch and load.

A cold task start downloads the GGUF from R2, checks its sha256 and loads it before `/readyz` answers 200
(a restart on the same instance finds it in the host's model cache and skips the download). ECS gives that
time three ways, each with a hard limit:

- `healthCheck.startPeriod` (at most 300 s): failed checks do not count meanwhile;
- then `retries` (at most 10) failed checks, `interval` (5..300 s) apart, before the container is UNHEALTHY;
- `startTimeout` on the runtime: how long cloudflared, which waits for the runtime to be HEALTHY, keeps
  waiting (ECS applies the timeout of the container that is waited for).

The expected cold start is `BOOT_SECONDS + model MiB / modelStartMibPerSecond`. It goes into the start
period up to 300 s; a longer one is covered by stretching the checks after it (interval × retries), which
also makes a runtime that hangs later take longer to be replaced, so that only happens for models that
need it. `startTimeout` ends where the health check itself would give up, one interval later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BOOT_SECONDS = 60  # Python imports, CUDA context, llama.cpp init: the part that does not scale with the model
MAX_START_PERIOD_S = 300
INTERVAL_S = 15
RETRIES = 4
MAX_RETRIES = 10
MAX_INTERVAL_S = 300
MIB = 1024 * 1024


LONGEST_WAIT_S = MAX_START_PERIOD_S + MAX_INTERVAL_S * (MAX_RETRIES - 1)


class StartBudgetError(ValueError):
    """The model cannot be fetched and loaded within the longest wait ECS health checks allow."""

    def __init__(self, message: str, minimum_mib_per_second: int):
        super().__init__(message)
        self.minimum_mib_per_second = minimum_mib_per_second


@dataclass(frozen=True)
class StartBudget:
    cold_start_s: int  # the expected time from container start to /readyz answering 200
    start_period_s: int
    interval_s: int
    retries: int

    @property
    def healthy_deadline_s(self) -> int:
        """The latest moment a passing check still makes the container HEALTHY (it fails the check after)."""
        return self.start_period_s + self.interval_s * (self.retries - 1)

    @property
    def start_timeout_s(self) -> int:
        """cloudflared gives up one interval after the health check would have made the runtime UNHEALTHY."""
        return self.start_period_s + self.interval_s * (self.retries + 1)


def start_budget(model_bytes: int, mib_per_second: int) -> StartBudget:
    cold_start = BOOT_SECONDS + math.ceil(model_bytes / MIB / mib_per_second)
    if cold_start <= MAX_START_PERIOD_S:
        return StartBudget(cold_start, cold_start, INTERVAL_S, RETRIES)
    remainder = cold_start - MAX_START_PERIOD_S
    # The last of the retries must still be able to pass: (retries - 1) intervals cover the remainder.
    retries = max(RETRIES, min(MAX_RETRIES, math.ceil(remainder / INTERVAL_S) + 1))
    interval = max(INTERVAL_S, math.ceil(remainder / (retries - 1)))
    if interval > MAX_INTERVAL_S:
        raise StartBudgetError(
            f"a cold start of this {model_bytes / MIB:.0f} MiB model at {mib_per_second} MiB/s takes about "
            f"{cold_start} s, longer than ECS health checks can wait ({LONGEST_WAIT_S} s)",
            math.ceil(model_bytes / MIB / (LONGEST_WAIT_S - BOOT_SECONDS)),
        )
    return StartBudget(cold_start, MAX_START_PERIOD_S, interval, retries)
