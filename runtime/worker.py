"""One worker thread per model, fed by a bounded queue: one sequence at a time, whatever the load."""

import asyncio
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class QueueFull(Exception):
    def __init__(self, retry_after_seconds: int):
        super().__init__(f"the queue is full; retry in {retry_after_seconds}s")
        self.retry_after_seconds = retry_after_seconds


class Job:
    """Work for the model thread; its result lands in an asyncio future on the caller's loop."""

    def __init__(self, work: Callable[[threading.Event], Any], loop: asyncio.AbstractEventLoop):
        self.work = work
        self.cancelled = threading.Event()
        self.future: asyncio.Future = loop.create_future()
        self._loop = loop

    def cancel(self) -> None:
        self.cancelled.set()

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
    _STOP = object()

    def __init__(self, name: str, queue_size: int, on_depth: Callable[[int], None] = lambda depth: None):
        self.name = name
        self._jobs: queue.Queue = queue.Queue(maxsize=queue_size)
        self._on_depth = on_depth
        # Smoothed seconds per job, for an honest Retry-After.
        self._seconds_per_job = 1.0
        self._thread = threading.Thread(target=self._run, name=f"model-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        # Unblock the thread even when the queue is full: pending jobs are cancelled first.
        while True:
            try:
                pending = self._jobs.get_nowait()
            except queue.Empty:
                break
            if isinstance(pending, Job):
                pending.cancel()
        self._jobs.put(self._STOP)
        self._thread.join(timeout=30)

    @property
    def depth(self) -> int:
        return self._jobs.qsize()

    def submit(self, work: Callable[[threading.Event], Any]) -> Job:
        """Queue `work(cancelled)`; QueueFull when `queue_size` jobs are already waiting."""
        job = Job(work, asyncio.get_running_loop())
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            waiting = self._jobs.qsize() + 1
            raise QueueFull(max(1, math.ceil(waiting * self._seconds_per_job))) from None
        self._on_depth(self._jobs.qsize())
        return job

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            self._on_depth(self._jobs.qsize())
            if job is self._STOP:
                return
            if job.cancelled.is_set():
                job.settle(dropped=True)
                continue
            started = time.perf_counter()
            try:
                job.settle(result=job.work(job.cancelled))
            except Exception as error:  # handed to the request that owns the job
                job.settle(error=error)
            self._seconds_per_job = 0.8 * self._seconds_per_job + 0.2 * (time.perf_counter() - started)
