"""The generation model's worker: up to `slots` requests decoded together, one token each per step.

Jobs come from the same fair queue as ModelWorker's (runtime/engine/worker.py), taken as slots free up: a
finished or cancelled request frees its slot at the next step, and the next waiting job (fairly across
tenants) is admitted then. Its prompt is processed alone, after which it joins the step. The engine
makes a request's answer independent of what it is decoded with (runtime/engine/slots.py).
"""

import logging
import time
from collections.abc import Callable

from runtime.engine.engines import GenerationEngine, Sequence
from runtime.engine.relevance import Scoring
from runtime.engine.worker import Job, ModelWorker

log = logging.getLogger(__name__)

# When another app's worker holds every slot of a shared engine (tests run several apps over one model).
_WAIT_FOR_A_SLOT_S = 0.01


Running = Sequence | Scoring


class BatchWorker(ModelWorker):
    """Each job's `work(cancelled)` returns the Sequence to decode (its Generation settles the job) or
    the Scoring to run (its scores settle the job)."""

    def __init__(
        self,
        name: str,
        engine: GenerationEngine,
        max_running: int,
        queue_size: int,
        tenant_queue_size: int,
        on_depth: Callable[[int], None] = lambda depth: None,
        on_end: Callable[[Running, float, bool], None] = lambda sequence, seconds, cancelled: None,
    ):
        super().__init__(name, queue_size, tenant_queue_size, on_depth)
        self._engine = engine
        # At most the engine's slots; fewer when this app is configured with fewer (RUNTIME_DECODE_SLOTS).
        self._max_running = min(max_running, engine.slots)
        self._on_end = on_end  # (sequence, seconds since admission, cancelled)

    def _run(self) -> None:
        running: dict[Job, tuple[Running, float]] = {}
        waiting_for_slot: list[Job] = []
        while True:
            if not self._jobs.closed:
                free = min(self._engine.free_slots, self._max_running - len(running)) - len(waiting_for_slot)
                if free > 0:
                    # Block only when there is nothing to decode; otherwise take what waits now.
                    idle = not running and not waiting_for_slot
                    taken = self._jobs.take(max_items=free, timeout=None if idle else 0)
                    self._on_depth(len(self._jobs))
                    waiting_for_slot += taken
            elif not running:
                for job in waiting_for_slot:
                    job.settle(dropped=True)
                return
            waiting_for_slot = [job for job in waiting_for_slot if not self._admit(job, running)]
            self._drop_cancelled(running)
            if not running:
                if waiting_for_slot:
                    time.sleep(_WAIT_FOR_A_SLOT_S)
                continue
            self._step(running)

    def _admit(self, job: Job, running: dict[Job, tuple[Running, float]]) -> bool:
        """Start `job` in a free slot; False when none is free (kept for the next round)."""
        if job.cancelled.is_set():
            job.settle(dropped=True)
            return True
        if self._engine.free_slots == 0:
            return False
        started = time.perf_counter()
        try:
            sequence = job.work(job.cancelled)
            if not self._engine.admit(sequence):
                return False
        except Exception as error:  # handed to the request that owns the job
            job.settle(error=error)
            return True
        if sequence.finished:
            self._finish(job, sequence, started)
        else:
            running[job] = (sequence, started)
        return True

    def _drop_cancelled(self, running: dict[Job, tuple[Running, float]]) -> None:
        for job in [job for job in running if job.cancelled.is_set()]:
            sequence, started = running.pop(job)
            self._engine.abandon(sequence)
            self._on_end(sequence, time.perf_counter() - started, True)
            job.settle(dropped=True)

    def _step(self, running: dict[Job, tuple[Running, float]]) -> None:
        try:
            self._engine.step([sequence for sequence, _ in running.values()])
        except Exception as error:  # llama.cpp refused the step: every request in it fails
            log.exception("decode step failed")
            for job, (sequence, _) in list(running.items()):
                self._engine.abandon(sequence)
                job.settle(error=error)
            running.clear()
            return
        for job in [job for job, (sequence, _) in running.items() if sequence.finished]:
            sequence, started = running.pop(job)
            self._finish(job, sequence, started)

    def _finish(self, job: Job, sequence: Running, started: float) -> None:
        seconds = time.perf_counter() - started
        self._on_end(sequence, seconds, False)
        job.settle(result=sequence.result)
        # Slots decode in parallel, so a full engine completes a job every `seconds / slots`.
        per_job = seconds / self._max_running
        self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * per_job
