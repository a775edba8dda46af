"""How busy this runtime is: accepted HTTP requests, and per model the jobs waiting and running.

The HTTP layer and the service report into it; the load reporter (EMF), task protection and the drain
read it. It never looks inside a model worker's scheduler: a job is admitted when the worker accepted
it, started when the model thread calls its work, and done when that work returns (or, for a job that
never ran, when its future settles; for a batched generation, whose work only starts its sequence, when
its future settles).
"""

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

Result = TypeVar("Result")


@dataclass(frozen=True)
class ModelLoad:
    queued: int
    running: int
    # Seconds between admission and start, of the jobs that started since the previous report.
    waits: tuple[float, ...]

    @property
    def wait_p95_seconds(self) -> float:
        """Nearest-rank 95th percentile; 0 when no job started in the interval."""
        if not self.waits:
            return 0.0
        ordered = sorted(self.waits)
        return ordered[math.ceil(0.95 * len(ordered)) - 1]


class Ticket:
    """One admitted job's way through the tracker: waiting → running → done, each step counted once."""

    def __init__(self, tracker: "LoadTracker", model: str):
        self._tracker = tracker
        self._model = model
        self._admitted = time.monotonic()
        self._state = "waiting"
        self._runs_until_settled = False

    def run(self, work: Callable[..., Result]) -> Callable[..., Result]:
        """`work` wrapped so that calling it (on the model thread) counts as running until it returns."""

        def counted(*args: Any) -> Result:
            if not self._tracker._move(self, "waiting", "running"):
                return work(*args)  # settled already: it is not counted twice
            try:
                return work(*args)
            finally:
                self._tracker._move(self, "running", "done")

        return counted

    def run_until_settled(self, work: Callable[..., Result]) -> Callable[..., Result]:
        """`work` wrapped for a job that runs on after `work` returns (a batched sequence, which `work`
        only starts): it counts as running from the call until the job settles."""
        self._runs_until_settled = True

        def started(*args: Any) -> Result:
            self._tracker._move(self, "waiting", "running")
            return work(*args)

        return started

    def settled(self) -> None:
        """The job's outcome is known; a job that never started stops counting as waiting."""
        if not self._tracker._move(self, "waiting", "done") and self._runs_until_settled:
            self._tracker._move(self, "running", "done")


class LoadTracker:
    def __init__(self, models: Iterable[str]):
        self._lock = threading.Lock()
        self._queued = dict.fromkeys(models, 0)
        self._running = dict.fromkeys(self._queued, 0)
        self._waits: dict[str, list[float]] = {model: [] for model in self._queued}
        self._open_requests = 0

    # --- the HTTP layer: a request counts from acceptance to its last byte (streams included) ---

    def request_opened(self) -> None:
        with self._lock:
            self._open_requests += 1

    def request_closed(self) -> None:
        with self._lock:
            self._open_requests -= 1

    @property
    def open_requests(self) -> int:
        return self._open_requests

    # --- the service: jobs per model ---

    def admit(self, model: str) -> Ticket:
        with self._lock:
            self._queued[model] += 1
        return Ticket(self, model)

    def _move(self, ticket: Ticket, origin: str, target: str) -> bool:
        with self._lock:
            if ticket._state != origin:
                return False
            ticket._state = target
            model = ticket._model
            if origin == "waiting":
                self._queued[model] -= 1
            else:
                self._running[model] -= 1
            if target == "running":
                self._running[model] += 1
                self._waits[model].append(time.monotonic() - ticket._admitted)
            return True

    # --- readers ---

    @property
    def busy(self) -> bool:
        """Anything accepted and not yet answered to its last byte."""
        with self._lock:
            return self._open_requests > 0 or any(self._queued.values()) or any(self._running.values())

    def report(self) -> dict[str, ModelLoad]:
        """Per model: what waits and runs now, and the waits since the previous report (then forgotten)."""
        with self._lock:
            loads = {
                model: ModelLoad(self._queued[model], self._running[model], tuple(self._waits[model]))
                for model in self._queued
            }
            for waits in self._waits.values():
                waits.clear()
        return loads
