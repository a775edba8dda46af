"""One worker thread per model, fed by a fair queue: one sequence at a time, whatever the load."""

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from runtime.engine.fair_queue import FairQueue, NoRoom, QueueClosed

log = logging.getLogger(__name__)


class QueueFull(Exception):
    def __init__(self, retry_after_seconds: int, tenant_share_full: bool):
        super().__init__(f"the queue is full; retry in {retry_after_seconds}s")
        self.retry_after_seconds = retry_after_seconds
        self.tenant_share_full = tenant_share_full


class WorkerStopped(Exception):
    """The worker is shutting down and takes no more work."""


class Job:
    """Work for the model thread; its result lands in an asyncio future on the caller's loop."""

    def __init__(
        self,
        work: Callable[[threading.Event], Any],
        loop: asyncio.AbstractEventLoop,
        withdraw: Callable[["Job"], None] = lambda job: None,
    ):
        self.work = work
        self.cancelled = threading.Event()
        self.future: asyncio.Future = loop.create_future()
        self._loop = loop
        self._withdraw = withdraw

    def cancel(self) -> None:
        """Abandon the job: a waiting one leaves the queue now, a running one stops at its next check."""
        self.cancelled.set()
        self._withdraw(self)

    def settle(self, result: Any = None, error: BaseException | None = None, dropped: bool = False) -> None:
        def resolve() -> None:
            if self.future.done():
                return
            if dropped or self.cancelled.is_set():  # nobody waits for an abandoned job's outcome
                self.future.cancel()
            elif error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result)

        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(resolve)


class ModelWorker:
    def __init__(
        self,
        name: str,
        queue_size: int,
        tenant_queue_size: int,
        on_depth: Callable[[int], None] = lambda depth: None,
    ):
        self.name = name
        self._jobs: FairQueue[Job] = FairQueue(queue_size, tenant_queue_size)
        self._on_depth = on_depth
        # Smoothed seconds per job, for an honest Retry-After.
        self._seconds_per_job = 1.0
        self._thread = threading.Thread(target=self._run, name=f"model-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # Waiting jobs are cancelled; the thread finishes (or abandons) the one it runs and exits.
        for pending in self._jobs.close():
            pending.cancelled.set()
            pending.settle(dropped=True)
        self._on_depth(0)
        self._thread.join(timeout=30)

    def submit(self, work: Callable[[threading.Event], Any], tenant: str) -> Job:
        """Queue `work(cancelled)` for `tenant`; QueueFull when its share or the whole queue is full."""
        job = Job(work, asyncio.get_running_loop(), self._withdraw)
        try:
            self._jobs.put(tenant, job)
        except NoRoom as refused:
            # `position` counts the jobs served before this one would be, in the fair order: for a
            # tenant that floods, that is its own backlog interleaved with everyone else's turns.
            retry_after = max(1, math.ceil(refused.position * self._seconds_per_job))
            raise QueueFull(retry_after, refused.tenant_share_full) from None
        except QueueClosed:
            raise WorkerStopped(f"the {self.name} worker is shutting down") from None
        self._on_depth(len(self._jobs))
        return job

    def _withdraw(self, job: Job) -> None:
        if self._jobs.remove(job):
            self._on_depth(len(self._jobs))
            job.settle(dropped=True)

    def _run(self) -> None:
        while True:
            taken = self._jobs.take(max_items=1)
            if not taken:  # closed
                return
            self._on_depth(len(self._jobs))
            job = taken[0]
            if job.cancelled.is_set():  # cancelled between being taken and getting here
                job.settle(dropped=True)
                continue
            started = time.perf_counter()
            try:
                job.settle(result=job.work(job.cancelled))
            except Exception as error:  # handed to the request that owns the job
                job.settle(error=error)
            self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * (time.perf_counter() - started)
