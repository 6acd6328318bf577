"""Tasks from request to result: resolve images, pick the engine, run on a pool, shape the result.

Both the HTTP routers and the WebSocket stream go through here, so the two speak the same contract.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from imagesense import budgets
from imagesense.engine.errors import InvalidGenerationRequest
from imagesense.engine.protocol import ChatMessage, GenerationRequest, OcrEngine, VisionLanguageEngine
from imagesense.engines import EngineRuntime
from imagesense.errors import ClientGone, ModelUnavailable, ShuttingDown, ValidationFailed
from imagesense.estimates import CostModel, fast_ocr_estimate
from imagesense.handles import FallbackHandle, TaskHandle
from imagesense.images import decode_image, fit_to_budget
from imagesense.jobs import Job, JobCancelled, JobContext
from imagesense.metrics import LiveState, Metrics, PoolLoad
from imagesense.ocr.results import fast_image_usage, fast_ocr_result, ocr_needs_fallback
from imagesense.pool import WorkerPool
from imagesense.prompts import build_messages
from imagesense.results import SchemaCompiler, generation_result, image_usage, parsed_json
from imagesense.schemas.tasks import AnyTaskResult, Estimate, OcrEngineChoice, TaskName, TaskOptions, Turn
from imagesense.settings import Settings
from imagesense.store import ImageStore, StoredImage, content_id
from imagesense.tasklog import TaskOutcomes

log = logging.getLogger(__name__)
DECODES_AT_ONCE = 2


@dataclass(frozen=True)
class TaskSpec:
    task: TaskName
    images: list[StoredImage]
    options: TaskOptions
    question: str | None = None
    history: list[Turn] = field(default_factory=list)
    client: str = ""  # who asked (a key, or an address): the queue serves clients in turn
    conversation: list[ChatMessage] | None = None  # chat: the messages as given, one image part per image
    json_schema: Mapping[str, Any] | None = None  # the answer is JSON valid against this schema
    stop: tuple[str, ...] = ()
    document_text: str | None = None  # extract: the pages' text (text layer or fast OCR), beside the images
    fields: Mapping[str, str] = field(default_factory=dict)  # how the caller's API names a field, if not as ours
    # When the request must be over (time.monotonic()): every step of a flow (an extract's OCR, then its
    # VLM job) shares the one deadline from arrival. None: the pool's timeout from submission.
    deadline: float | None = None


@dataclass
class Engines:
    vlm: EngineRuntime[VisionLanguageEngine]
    fast_ocr: EngineRuntime[OcrEngine]
    vlm_pool: WorkerPool
    ocr_pool: WorkerPool


class TaskService:
    def __init__(self, settings: Settings, store: ImageStore, engines: Engines, metrics: Metrics) -> None:
        self.settings = settings
        self.outcomes = TaskOutcomes(metrics)
        self.store = store
        self.engines = engines
        self.costs = CostModel()
        self.encodings = budgets.EncodingMemory()
        # Decoding a large image takes memory several times its file size: a few at a time, never more.
        self._decoding = asyncio.Semaphore(DECODES_AT_ONCE)
        self.schemas = SchemaCompiler()
        self.shutting_down = False
        self.started_at = int(time.time())  # what /v1/models reports as the model's "created"

    async def upload(self, owner: str, data: bytes, field: str = "file") -> StoredImage:
        image_id = content_id(data)
        if (known := await self.store.lookup(owner, image_id)) is not None:
            return known
        async with self._decoding:
            decoded = await asyncio.to_thread(
                decode_image,
                data,
                max_bytes=self.settings.max_upload_bytes,
                max_pixels=self.settings.max_image_pixels,
                field=field,
            )
        return await self.store.add(owner, image_id, decoded, data)

    async def resolve(self, owner: str, image_ids: Sequence[str], field: str = "image_ids") -> list[StoredImage]:
        return [await self.store.fetch(owner, image_id, field=field) for image_id in image_ids]

    def check_image_count(self, count: int, field: str) -> None:
        limit = self.settings.max_images_per_request
        if count == 0:
            raise ValidationFailed("at least one image is required", field=field)
        if count > limit:
            raise ValidationFailed(f"{count} images given; the limit is {limit} per request", field=field)

    def _budgets(self, spec: TaskSpec, *, running: bool = True) -> budgets.Budgets:
        """The request's budgets, checked whichever engine runs: a request is valid or not regardless of load."""
        if spec.task != "chat" or spec.images:  # a chat may be text alone (titles, tags, follow-ups)
            self.check_image_count(len(spec.images), spec.fields.get("image_ids", "image_ids"))
        if spec.json_schema is not None and spec.task not in ("ask", "chat", "extract"):
            raise ValidationFailed("json_schema is for questions (ask), not for ocr or describe", field="json_schema")
        pixels = budgets.pixel_budget(spec.task, spec.options, self.settings)  # never below vision_min_pixels
        images = tuple(item.scoped_id for item in spec.images)
        pixels = self.encodings.budget(spec.task, spec.options, images, pixels, remember=running)
        new_tokens = budgets.max_new_tokens(spec.task, spec.options, self.settings)
        return budgets.Budgets(pixels, self.settings.vision_min_pixels, new_tokens)

    async def submit(self, spec: TaskSpec) -> TaskHandle[AnyTaskResult]:
        """Validate and queue a task; raises 4xx errors, 429 when full, 503 when no engine can do it.
        Every task's outcome is logged in one line when it ends."""
        if spec.json_schema is not None:  # refused now, not after the queue: InvalidGenerationRequest → 422
            field = spec.fields.get("json_schema", "json_schema")
            await self.schemas.check(spec.json_schema, field, spec.deadline or self.deadline_from_now())
        handle = self._submit(spec)
        self.outcomes.watch(spec.task, handle)
        return handle

    def _submit(self, spec: TaskSpec) -> TaskHandle[AnyTaskResult]:
        task_budgets = self._budgets(spec)
        engine = self._ocr_engine(spec) if spec.task == "ocr" else "vlm"
        if engine == "vlm":
            return self._submit_vlm(spec, task_budgets, deadline=spec.deadline)
        fast_job = self._submit_fast_ocr(spec)
        if engine == "fast":
            return fast_job

        def fall_back(first: AnyTaskResult) -> Job[AnyTaskResult] | None:
            if not ocr_needs_fallback(first, self.settings) or not self.engines.vlm.ready:
                return None
            return self._submit_vlm(spec, task_budgets, deadline=fast_job.deadline)  # within the request's time

        return FallbackHandle(fast_job, fall_back)

    def estimate(self, spec: TaskSpec) -> Estimate:
        """Visual tokens and expected seconds for a task, without running it."""
        task_budgets = self._budgets(spec, running=False)
        budget, min_pixels, new_tokens = task_budgets.pixels, task_budgets.min_pixels, task_budgets.new_tokens
        engine = self._ocr_engine(spec) if spec.task == "ocr" else "vlm"
        if engine != "vlm":  # fast OCR, or auto: the fast engine answers first
            images = [fast_image_usage(item) for item in spec.images]
            return fast_ocr_estimate(spec.task, images, self.engines.ocr_pool.stats().queued)
        images = [image_usage(item, budget, min_pixels) for item in spec.images]
        prose = sum(len(turn.content) for turn in spec.history) + len(spec.question or "")
        return self.costs.task_estimate(spec.task, images, prose, new_tokens, self.engines.vlm_pool.stats().queued)

    def _ocr_engine(self, spec: TaskSpec) -> OcrEngineChoice:
        """auto runs the fast engine first; when only one engine is up, or for several images (which
        only the VLM reads in one request), auto means the VLM."""
        requested = spec.options.engine or self.settings.ocr_engine
        fast, vlm = self.engines.fast_ocr, self.engines.vlm
        if len(spec.images) > 1 and requested == "fast":
            raise ValidationFailed("the fast OCR engine reads one image per request", field="image_ids")
        if requested == "auto" and len(spec.images) > 1:
            return "vlm"
        if requested == "auto" and not fast.ready and vlm.ready:
            return "vlm"
        if requested == "auto" and not fast.ready:
            reasons = f"{fast.state().reason}; {vlm.state().reason}"
            raise ModelUnavailable(f"no OCR engine is ready: {reasons}")
        return requested

    def deadline_from_now(self) -> float:
        """The deadline of a request arriving now: every step of its flow shares it."""
        return time.monotonic() + self.settings.job_timeout_s

    def _submit_fast_ocr(self, spec: TaskSpec) -> Job[AnyTaskResult]:
        engine = self.engines.fast_ocr.get()
        [image] = spec.images  # _ocr_engine sends several images to the VLM

        def work(context: JobContext) -> AnyTaskResult:
            result = fast_ocr_result(engine.read(image.decoded.image), image, engine.name, context)
            context.emit(result.text)  # the whole text at once: a streaming client assembles the same
            return result

        return self.engines.ocr_pool.submit(work, spec.deadline, client=spec.client)

    def _submit_vlm(
        self, spec: TaskSpec, task_budgets: budgets.Budgets, deadline: float | None = None
    ) -> Job[AnyTaskResult]:
        messages = spec.conversation or build_messages(
            spec.task,
            len(spec.images),
            question=spec.question,
            history=spec.history,
            detail=spec.options.detail,
            json_schema=spec.json_schema,
            document_text=spec.document_text,
        )
        budget, min_pixels, new_tokens = task_budgets.pixels, task_budgets.min_pixels, task_budgets.new_tokens
        engine = self.engines.vlm.get()  # 503 now, not after waiting in the queue
        if spec.json_schema is not None and not engine.info.capabilities.json_schema:
            raise ValidationFailed(
                f"{engine.info.model} can't constrain its output to a schema", field=spec.fields.get("json_schema")
            )

        def work(context: JobContext) -> AnyTaskResult:
            request = GenerationRequest(
                messages=messages,
                images=[fit_to_budget(item.decoded.image, budget, min_pixels) for item in spec.images],
                max_pixels=budget,
                min_pixels=min_pixels,
                max_new_tokens=new_tokens,
                temperature=spec.options.temperature,
                top_p=spec.options.top_p,
                repetition_guard=self.settings.repetition_guard,
                image_keys=tuple(item.scoped_id for item in spec.images),  # one client's prefixes are its own
                max_prompt_tokens=self.settings.max_prompt_tokens,
                seed=spec.options.seed,
                stop=spec.stop,
                json_schema=spec.json_schema,
            )
            try:
                output = engine.generate(request, context)
            except InvalidGenerationRequest as exc:
                raise self._invalid(spec, exc) from None
            # Whole, fresh generations only: a reused prefix or a cut (cancel, deadline) would look cheap.
            if not output.cached_tokens and output.finish_reason != "cancelled":
                text_tokens = output.prompt_tokens - output.image_tokens
                self.costs.observe(
                    output.image_tokens, text_tokens, output.completion_tokens,
                    output.prefill_ms / 1000, output.decode_ms / 1000,
                )  # fmt: skip
            result = generation_result(spec.task, spec.images, output, engine.info.model, budget, min_pixels, context)
            if spec.json_schema is not None:
                result.data = parsed_json(output.text, spec.json_schema)
            return result

        return self.engines.vlm_pool.submit(work, deadline, spec.client)

    @staticmethod
    def _invalid(spec: TaskSpec, exc: InvalidGenerationRequest) -> ValidationFailed:
        """The engine's refusal, naming the field as the caller's API does."""
        if exc.field is not None:
            return ValidationFailed(str(exc), field=spec.fields.get(exc.field, exc.field))
        # The prompt budget: name what the client can shorten.
        field = "history" if spec.history else "question" if spec.question else "image_ids"
        return ValidationFailed(f"{exc} (IMAGESENSE_MAX_PROMPT_TOKENS)", field=spec.fields.get(field, field))

    async def complete(self, spec: TaskSpec, is_disconnected: Callable[[], Awaitable[bool]]) -> AnyTaskResult:
        """Run a task to its result for an HTTP client; a client that disconnects cancels it."""
        return await self.follow(await self.submit(spec), is_disconnected)

    async def follow(
        self, handle: TaskHandle[AnyTaskResult], is_disconnected: Callable[[], Awaitable[bool]]
    ) -> AnyTaskResult:
        """A submitted task's result for an HTTP client; a client that disconnects cancels it."""
        watcher = asyncio.create_task(_cancel_on_disconnect(handle, is_disconnected))
        try:
            return await handle.result()
        except JobCancelled as cancelled:
            if cancelled.by_shutdown:
                raise ShuttingDown("the service shut down before the task finished; retry") from None
            raise ClientGone("the client closed the request") from None
        finally:
            watcher.cancel()

    def live_state(self) -> LiveState:
        """What /metrics reads at each scrape."""
        pools = {"vlm": self.engines.vlm_pool, "fast_ocr": self.engines.ocr_pool}

        def loads() -> dict[str, PoolLoad]:
            counts = {name: pool.stats() for name, pool in pools.items()}  # one consistent snapshot per pool
            return {name: PoolLoad(count.active, count.queued) for name, count in counts.items()}

        def ready() -> dict[str, bool]:
            return {"vlm": self.engines.vlm.ready, "fast_ocr": self.engines.fast_ocr.ready}

        return LiveState(loads, ready)

    def shut_down(self, grace_s: float) -> None:
        """Blocking (run it off the event loop): take no new work, give what is queued or running
        ``grace_s`` to finish, then stop the rest; each stopped task ends as a cancellation (503 over HTTP)."""
        self.shutting_down = True
        pools = (self.engines.vlm_pool, self.engines.ocr_pool)
        for pool in pools:
            pool.close()
        deadline = time.monotonic() + grace_s
        for pool in pools:
            if not pool.drain(max(0.0, deadline - time.monotonic())) and grace_s > 0:
                log.warning("shutdown: work still running after %.0f s of grace is stopped", grace_s)
        for pool in pools:
            pool.shutdown()
        self.schemas.close()


async def _cancel_on_disconnect(
    handle: TaskHandle[AnyTaskResult], is_disconnected: Callable[[], Awaitable[bool]]
) -> None:
    while not await is_disconnected():
        await asyncio.sleep(0.25)
    handle.cancel()
