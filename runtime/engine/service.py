"""Inference requests between HTTP and the engines: limits, the per-model fair queues, streaming, metrics."""

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.config.settings import RuntimeSettings
from runtime.engine.batch_worker import BatchWorker
from runtime.engine.engines import Generation, Piece, Sequence
from runtime.engine.grammar import GrammarRefused, answer_problem, grammar_text
from runtime.engine.json_schema import SchemaRefused, checked_schema
from runtime.engine.load import LoadTracker
from runtime.engine.metrics import RuntimeMetrics
from runtime.engine.models import LoadedModels
from runtime.engine.relevance import Scoring
from runtime.engine.sampling import GREEDY, Sampler, SamplingParams
from runtime.engine.worker import Job, ModelWorker, QueueFull, WorkerStopped
from runtime.errors import ApiError, invalid_field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StructuredOutput:
    """A checked JSON schema (normalised) and the grammar that enforces it."""

    schema: dict
    grammar: str


@dataclass(frozen=True)
class DecodingLimits:
    """What a request asked for, before it is checked against the settings and the context window."""

    max_tokens: int | None
    stops: list[str]
    seed: int | None
    max_tokens_field: str = "max_tokens"
    structured: StructuredOutput | None = None
    sampling: SamplingParams = GREEDY
    n: int = 1
    logprobs: int | None = None  # alternatives per token; None: no logprobs


@dataclass(frozen=True)
class DecodingRequest:
    prompt_tokens: list[int]
    max_tokens: int
    stops: list[str]
    seed: int
    max_tokens_field: str = "max_tokens"
    structured: StructuredOutput | None = None
    sampling: SamplingParams = GREEDY
    # Choice i samples with the random stream (seed, i): choice 0 is the answer of the same request with n=1.
    n: int = 1
    logprobs: int | None = None


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

    async def prompt_tokens(self, prompt: str) -> list[int]:
        """The tokens a generation of `prompt` starts from (what /v1/tokenize shows)."""
        return await asyncio.to_thread(self.models.generator.tokenize_prompt, prompt)

    async def chat_tokens(self, messages: list[dict[str, str]]) -> list[int]:
        """The tokens a chat completion of `messages` starts from, the chat template applied."""
        try:
            return await asyncio.to_thread(self.models.generator.tokenize_chat, messages)
        except ValueError as error:  # the chat template refuses this conversation (e.g. role order)
            raise invalid_field("messages", str(error)) from None

    async def prompt_decoding(
        self, prompt: str, limits: DecodingLimits, prompt_field: str = "prompt"
    ) -> DecodingRequest:
        return self._decoding(await self.prompt_tokens(prompt), limits, prompt_field)

    async def chat_decoding(self, messages: list[dict[str, str]], limits: DecodingLimits) -> DecodingRequest:
        return self._decoding(await self.chat_tokens(messages), limits, "messages")

    async def relevance_prompts(self, query: str, documents: list[str]) -> list[list[int]]:
        """Each document's relevance prompt; a 400 naming the document whose prompt cannot fit a slot."""
        prompts = await asyncio.to_thread(self.models.generator.relevance_prompts, query, documents)
        n_ctx = self.models.generator.n_ctx
        for index, prompt in enumerate(prompts):
            if len(prompt) > n_ctx:
                raise invalid_field(
                    f"documents[{index}]",
                    f"is {len(prompt)} tokens with the query and the relevance prompt; "
                    f"the context window is {n_ctx} tokens",
                )
        return prompts

    async def structured_output(self, schema: object, field: str) -> StructuredOutput:
        """The grammar for a JSON schema sent in `field`, or a 400 naming the keyword it cannot enforce."""
        # Off the event loop: converting a schema with hundreds of properties takes a few hundred ms.
        try:
            return await asyncio.to_thread(self._structured_output, schema)
        except SchemaRefused as refused:
            path = field
            if refused.path:
                path = f"{field}{refused.path}" if refused.path.startswith("[") else f"{field}.{refused.path}"
            raise invalid_field(path, refused.message) from None
        except GrammarRefused:
            message = "cannot be turned into a grammar (a $ref cycle that never writes a value?)"
            raise invalid_field(field, message) from None

    def _structured_output(self, schema: object) -> StructuredOutput:
        checked = checked_schema(schema)
        grammar = grammar_text(checked)
        # Built once here so that a grammar llama.cpp refuses is a 400 before the request queues.
        self.models.generator.grammar_constraint(grammar).close()
        return StructuredOutput(checked, grammar)

    def _decoding(self, tokens: list[int], limits: DecodingLimits, field: str) -> DecodingRequest:
        if limits.structured is not None and limits.stops:
            # A stop string could cut the JSON short (or match inside a string value): refused, not guessed.
            raise invalid_field(
                "stop", "cannot be combined with structured output (a stop string could cut the JSON)"
            )
        cap = self._settings.max_tokens_cap
        max_tokens = limits.max_tokens
        if max_tokens is not None and max_tokens > cap:
            raise invalid_field(limits.max_tokens_field, f"must be at most {cap}")
        if limits.n > self._settings.max_choices:
            raise invalid_field("n", f"must be at most {self._settings.max_choices} (RUNTIME_MAX_CHOICES)")
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
            max_tokens_field=limits.max_tokens_field,
            structured=limits.structured,
            sampling=limits.sampling,
            n=limits.n,
            logprobs=limits.logprobs,
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
        self,
        request: DecodingRequest,
        choice: int,
        cancelled: threading.Event,
        on_piece: Callable[[Piece], None],
    ) -> Sequence:
        """On the model thread, when a slot is free: the sequence the batch worker decodes."""
        self._metrics.inferences.labels(kind="generate").inc()
        self._metrics.prompt_tokens.labels(kind="generate").inc(len(request.prompt_tokens))
        grammar = None if request.structured is None else request.structured.grammar
        sampler = Sampler(request.sampling, request.seed, choice, request.prompt_tokens)
        return self.models.generator.sequence(
            request.prompt_tokens,
            request.max_tokens,
            request.stops,
            cancelled,
            on_piece,
            sampler,
            request.logprobs,
            grammar,
        )

    def _submit_choice(
        self, request: DecodingRequest, choice: int, tenant: str, on_piece: Callable[[Piece], None]
    ) -> Job:
        return self._submit(
            "generate",
            lambda cancelled: self._start_generation(request, choice, cancelled, on_piece),
            tenant,
        )

    def _start_scoring(self, prompts: list[list[int]], cancelled: threading.Event) -> Scoring:
        self._metrics.inferences.labels(kind="rerank").inc()
        self._metrics.prompt_tokens.labels(kind="rerank").inc(sum(len(prompt) for prompt in prompts))
        self._metrics.rerank_documents.inc(len(prompts))
        return Scoring(prompts, cancelled)

    def _generation_ended(self, sequence: Sequence | Scoring, seconds: float, cancelled: bool) -> None:
        kind = "rerank" if isinstance(sequence, Scoring) else "generate"
        self._metrics.inference_seconds.labels(kind=kind).observe(seconds)
        if cancelled:
            self._metrics.cancelled.labels(kind=kind).inc()
        elif isinstance(sequence.result, Generation):
            self._metrics.generated_tokens.inc(sequence.result.completion_tokens)

    async def generate(
        self, request: DecodingRequest, tenant: str, on_piece: Callable[[Piece], None] = lambda piece: None
    ) -> Generation:
        """The whole answer of a one-choice request; `on_piece` sees the pieces a stream would send
        (called on the model thread)."""
        if request.n != 1:
            raise ValueError("generate() decodes one choice; use generate_choices()")
        return (await self.generate_choices(request, tenant, lambda choice: on_piece))[0]

    async def generate_choices(
        self,
        request: DecodingRequest,
        tenant: str,
        on_piece_of: Callable[[int], Callable[[Piece], None]] = lambda choice: _ignore,
    ) -> list[Generation]:
        """The n answers, decoded as n sequences (they batch like separate requests); `on_piece_of(i)`
        sees choice i's pieces."""
        jobs: list[Job] = []
        try:
            for choice in range(request.n):
                jobs.append(self._submit_choice(request, choice, tenant, on_piece_of(choice)))
            results = await asyncio.gather(*(job.future for job in jobs))
            return [_checked_answer(request, result) for result in results]
        finally:
            for job in jobs:
                job.cancel()  # a no-op once finished; frees the model if this request was abandoned

    def stream(self, request: DecodingRequest, tenant: str) -> AsyncIterator[Piece | Generation]:
        """Queue a one-choice request now (a full queue is a 429 before any byte is sent), then follow it."""
        if request.n != 1:
            raise ValueError("a stream of several choices is stream_choices()")
        job, pieces = self._followed_choice(request, 0, tenant)
        return _follow(job, pieces, lambda result: _checked_answer(request, result))

    def stream_choices(
        self, request: DecodingRequest, tenant: str
    ) -> AsyncIterator[tuple[int, Piece | Generation]]:
        """All n choices queued now and decoded together, streamed one after another in a fixed order:
        choice 0's pieces as they come, then choice 1's (held until its turn), … So the bytes of the
        stream depend on the request alone, never on which choice finished first."""
        jobs: list[Job] = []
        followers = []
        try:
            for choice in range(request.n):
                job, pieces = self._followed_choice(request, choice, tenant)
                jobs.append(job)
                followers.append(_follow(job, pieces, lambda result: _checked_answer(request, result)))
        except BaseException:
            for job in jobs:
                job.cancel()
            raise
        return _in_turn(followers, jobs)

    def _followed_choice(
        self, request: DecodingRequest, choice: int, tenant: str
    ) -> tuple[Job, asyncio.Queue]:
        loop = asyncio.get_running_loop()
        pieces: asyncio.Queue[Piece] = asyncio.Queue()

        def on_piece(piece: Piece) -> None:
            loop.call_soon_threadsafe(pieces.put_nowait, piece)

        return self._submit_choice(request, choice, tenant, on_piece), pieces

    async def rerank(self, prompts: list[list[int]], tenant: str) -> list[float]:
        """Each prompt's relevance score, on the generation model's worker through its fair queue."""
        job = self._submit("generate", lambda cancelled: self._start_scoring(prompts, cancelled), tenant)
        try:
            return await job.future
        finally:
            job.cancel()

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


def _checked_answer(request: DecodingRequest, result: Generation) -> Generation:
    """The answer, unless structured output did not end in a complete, valid JSON value: then an error,
    so that no client and no cache ever gets a cut or invalid answer."""
    if request.structured is None:
        return result
    if result.finish_reason == "length":
        field = request.max_tokens_field
        raise invalid_field(
            field,
            f"the JSON answer was not complete after {result.completion_tokens} tokens (the limit of {field} "
            "or of the context window); a cut answer is never returned: raise the limit",
        )
    problem = answer_problem(result.text, request.structured.schema)
    if problem is not None:  # the grammar should make this impossible: a bug, reported as one
        log.error("structured output failed its final check: %s", problem)
        raise ApiError("internal_error", "the structured answer failed its final check; see the runtime log")
    return result


def _ignore(piece: Piece) -> None:
    pass


async def _in_turn(
    followers: list[AsyncIterator[Piece | Generation]], jobs: list[Job]
) -> AsyncIterator[tuple[int, Piece | Generation]]:
    """Each choice's items in turn, tagged with the choice; every job is cancelled if the stream stops."""
    try:
        for choice, follower in enumerate(followers):
            async for item in follower:
                yield choice, item
    finally:
        for job in jobs:
            job.cancel()


async def _follow(
    job: Job, pieces: asyncio.Queue, finish: Callable[[Generation], Generation]
) -> AsyncIterator[Piece | Generation]:
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
            yield finish(job.future.result())
            return
    finally:
        if next_piece is not None:
            next_piece.cancel()
        # Runs when the client disconnects mid-stream too: the model thread stops at the next token.
        job.cancel()
