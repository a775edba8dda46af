"""Inference requests between HTTP and the engines: limits, the per-model fair queues, streaming, metrics."""

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.config.settings import RuntimeSettings
from runtime.engine.batch_worker import BatchWorker
from runtime.engine.engines import Generation, Sequence
from runtime.engine.load import LoadTracker
from runtime.engine.metrics import RuntimeMetrics
from runtime.engine.models import LoadedModels
from runtime.engine.worker import Job, ModelWorker, QueueFull, WorkerStopped
from runtime.errors import ApiError, invalid_field


@dataclass(frozen=True)
class DecodingLimits:
    """What a request asked for, before it is checked against the settings and the context window."""

    max_tokens: int | None
    stops: list[str]
    seed: int | None
    max_tokens_field: str = "max_tokens"


@dataclass(frozen=True)
class DecodingRequest:
    prompt_tokens: list[int]
    max_tokens: int
    stops: list[str]
    seed: int


class InferenceService:
    def __init__(
        self, models: LoadedModels, settings: RuntimeSettings, metrics: RuntimeMetrics, load: LoadTracker
    ):
        self.models = models
        self._settings = settings
        self._metrics = metrics
        self._load = load
        self._workers = {
            "generate": BatchWorker(
                "generate",
                models.generator,
                settings.decode_slots,
                settings.queue_size,
                settings.tenant_queue_size,
                metrics.queue_depth.labels(model="generate").set,
                self._generation_ended,
            ),
            "embed": ModelWorker(
                "embed",
                settings.queue_size,
                settings.tenant_queue_size,
                metrics.queue_depth.labels(model="embed").set,
            ),
        }

    def start(self) -> None:
        for worker in self._workers.values():
            worker.start()

    def stop(self) -> None:
        for worker in self._workers.values():
            worker.stop()

    # --- request preparation (raises ApiError naming the field) ---

    async def prompt_decoding(
        self, prompt: str, limits: DecodingLimits, prompt_field: str = "prompt"
    ) -> DecodingRequest:
        tokens = await asyncio.to_thread(self.models.generator.tokenize_prompt, prompt)
        return self._decoding(tokens, limits, prompt_field)

    async def chat_decoding(self, messages: list[dict[str, str]], limits: DecodingLimits) -> DecodingRequest:
        try:
            tokens = await asyncio.to_thread(self.models.generator.tokenize_chat, messages)
        except ValueError as error:  # the chat template refuses this conversation (e.g. role order)
            raise invalid_field("messages", str(error)) from None
        return self._decoding(tokens, limits, "messages")

    def _decoding(self, tokens: list[int], limits: DecodingLimits, field: str) -> DecodingRequest:
        cap = self._settings.max_tokens_cap
        max_tokens = limits.max_tokens
        if max_tokens is not None and max_tokens > cap:
            raise invalid_field(limits.max_tokens_field, f"must be at most {cap}")
        n_ctx = self.models.generator.n_ctx
        if len(tokens) >= n_ctx:
            raise invalid_field(
                field, f"is {len(tokens)} tokens; the context window is {n_ctx} tokens including the answer"
            )
        return DecodingRequest(
            prompt_tokens=tokens,
            max_tokens=max_tokens or self._settings.default_max_tokens,
            stops=limits.stops,
            seed=self._settings.default_seed if limits.seed is None else limits.seed,
        )

    async def count_embedding_tokens(self, texts: list[str], field: str) -> int:
        counts = await asyncio.to_thread(lambda: [self.models.embedder.count_tokens(t) for t in texts])
        limit = self.models.embedder.n_ctx
        for index, count in enumerate(counts):
            if count > limit:
                raise invalid_field(f"{field}[{index}]", f"is {count} tokens; the limit is {limit}")
        return sum(counts)

    # --- running on the model threads ---

    def _submit(self, kind: str, work: Callable[[threading.Event], Any], tenant: str) -> Job:
        """Queue `work` on `kind`'s worker, counted by the load tracker from admission to its end."""
        ticket = self._load.admit(kind)
        # A batched job runs on after its work returns (the sequence it starts), until it settles.
        counted = ticket.run_until_settled(work) if kind == "generate" else ticket.run(work)
        try:
            job = self._submit_to_worker(kind, counted, tenant)
        except BaseException:
            ticket.settled()
            raise
        job.future.add_done_callback(lambda _: ticket.settled())
        return job

    def _submit_to_worker(self, kind: str, work: Callable[[threading.Event], Any], tenant: str) -> Job:
        try:
            return self._workers[kind].submit(work, tenant)
        except QueueFull as full:
            self._metrics.rejected.labels(model=kind).inc()
            if full.tenant_share_full:
                message = (
                    f"this tenant already has {self._settings.tenant_queue_size} requests waiting "
                    f"(RUNTIME_QUEUE_SIZE_PER_TENANT); retry in {full.retry_after_seconds}s"
                )
            else:
                message = str(full)
            raise ApiError(
                "queue_full", message, headers={"Retry-After": str(full.retry_after_seconds)}
            ) from None
        except WorkerStopped as stopped:
            raise ApiError("shutting_down", str(stopped)) from None

    def _start_generation(
        self, request: DecodingRequest, cancelled: threading.Event, on_text: Callable[[str], None]
    ) -> Sequence:
        """On the model thread, when a slot is free: the sequence the batch worker decodes."""
        self._metrics.inferences.labels(kind="generate").inc()
        self._metrics.prompt_tokens.labels(kind="generate").inc(len(request.prompt_tokens))
        return self.models.generator.sequence(
            request.prompt_tokens, request.max_tokens, request.stops, cancelled, on_text
        )

    def _generation_ended(self, sequence: Sequence, seconds: float, cancelled: bool) -> None:
        self._metrics.inference_seconds.labels(kind="generate").observe(seconds)
        if cancelled:
            self._metrics.cancelled.labels(kind="generate").inc()
        elif sequence.result is not None:
            self._metrics.generated_tokens.inc(sequence.result.completion_tokens)

    async def generate(
        self, request: DecodingRequest, tenant: str, on_text: Callable[[str], None] = lambda piece: None
    ) -> Generation:
        """The whole answer; `on_text` sees the pieces a stream would send (called on the model thread)."""
        job = self._submit(
            "generate", lambda cancelled: self._start_generation(request, cancelled, on_text), tenant
        )
        try:
            return await job.future
        finally:
            job.cancel()  # a no-op once finished; frees the model if this request was abandoned

    def stream(self, request: DecodingRequest, tenant: str) -> AsyncIterator[str | Generation]:
        """Queue the request now (so a full queue is a 429 before any byte is sent), then follow it."""
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[str] = asyncio.Queue()

        def on_text(piece: str) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        job = self._submit(
            "generate", lambda cancelled: self._start_generation(request, cancelled, on_text), tenant
        )
        return _follow(job, pieces)

    def _embed_on_thread(self, texts: list[str], cancelled: threading.Event) -> list[np.ndarray]:
        self._metrics.inferences.labels(kind="embed").inc()
        started = time.perf_counter()
        try:
            return self.models.embedder.embed(texts, cancelled)
        finally:
            self._metrics.inference_seconds.labels(kind="embed").observe(time.perf_counter() - started)

    async def embed(self, texts: list[str], token_count: int, tenant: str) -> list[np.ndarray]:
        job = self._submit("embed", lambda cancelled: self._embed_on_thread(texts, cancelled), tenant)
        self._metrics.prompt_tokens.labels(kind="embed").inc(token_count)
        try:
            return await job.future
        finally:
            job.cancel()


async def _follow(job: Job, pieces: asyncio.Queue) -> AsyncIterator[str | Generation]:
    """Yield text pieces as the model thread produces them, then the final Generation."""
    next_piece: asyncio.Future | None = None
    try:
        while True:
            next_piece = asyncio.ensure_future(pieces.get())
            done, _ = await asyncio.wait({next_piece, job.future}, return_when=asyncio.FIRST_COMPLETED)
            if next_piece in done:
                yield next_piece.result()
                continue
            next_piece.cancel()
            # Pieces are posted to the loop before the result, so all of them are queued by now.
            while not pieces.empty():
                yield pieces.get_nowait()
            yield job.future.result()
            return
    finally:
        if next_piece is not None:
            next_piece.cancel()
        # Runs when the client disconnects mid-stream too: the model thread stops at the next token.
        job.cancel()
