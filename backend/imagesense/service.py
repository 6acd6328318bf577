"""Tasks from request to result: resolve images, apply budgets, run on the pool, shape the result.

Both the HTTP routers and the WebSocket stream go through here, so the two speak the same contract.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from imagesense import budgets
from imagesense.engine.generation import GenerationOutput, GenerationRequest
from imagesense.engine.prompts import build_messages
from imagesense.engine.runtime import ModelRuntime
from imagesense.errors import ApiError, JobCancelled, ValidationFailed
from imagesense.images import decode_image, fit_to_budget, fitted_size, visual_tokens
from imagesense.pool import Job, JobContext, WorkerPool
from imagesense.schemas.tasks import ImageUsage, TaskName, TaskOptions, TaskResult, Timings, Turn, Usage
from imagesense.settings import Settings
from imagesense.store import ImageStore, StoredImage, content_id


class ClientGone(ApiError):
    status, code = 499, "client_closed_request"


@dataclass(frozen=True)
class TaskSpec:
    task: TaskName
    images: list[StoredImage]
    options: TaskOptions
    question: str | None = None
    history: list[Turn] = field(default_factory=list)


class TaskService:
    def __init__(self, settings: Settings, store: ImageStore, pool: WorkerPool, runtime: ModelRuntime) -> None:
        self.settings = settings
        self.store = store
        self.pool = pool
        self.runtime = runtime

    async def upload(self, data: bytes, field: str = "file") -> StoredImage:
        image_id = content_id(data)
        if (known := self.store.peek(image_id)) is not None:
            return known
        decoded = await asyncio.to_thread(
            decode_image,
            data,
            max_bytes=self.settings.max_upload_bytes,
            max_pixels=self.settings.max_image_pixels,
            field=field,
        )
        return self.store.put(image_id, decoded)

    def resolve(self, image_ids: Sequence[str], field: str = "image_ids") -> list[StoredImage]:
        return [self.store.get(image_id, field=field) for image_id in image_ids]

    def check_image_count(self, count: int, field: str) -> None:
        limit = self.settings.max_images_per_request
        if count == 0:
            raise ValidationFailed("at least one image is required", field=field)
        if count > limit:
            raise ValidationFailed(f"{count} images given; the limit is {limit} per request", field=field)

    def submit(self, spec: TaskSpec) -> Job[TaskResult]:
        """Validate and queue a task; raises 4xx errors, 429 when full, 503 when the model isn't ready."""
        self.check_image_count(len(spec.images), "image_ids")
        messages = build_messages(
            spec.task, len(spec.images), question=spec.question, history=spec.history, detail=spec.options.detail
        )
        budget = budgets.pixel_budget(spec.task, spec.options, self.settings)
        new_tokens = budgets.max_new_tokens(spec.task, spec.options, self.settings)
        generator = self.runtime.generator  # 503 now, not after waiting in the queue
        min_pixels = min(self.settings.vision_min_pixels, budget)
        model_name = generator.loaded.name

        def work(context: JobContext) -> TaskResult:
            request = GenerationRequest(
                messages=messages,
                images=[fit_to_budget(item.decoded.image, budget, min_pixels) for item in spec.images],
                max_pixels=budget,
                min_pixels=min_pixels,
                max_new_tokens=new_tokens,
                temperature=spec.options.temperature,
                top_p=spec.options.top_p,
                repetition_guard=self.settings.repetition_guard,
            )
            output = generator.generate(request, context.should_stop, context.emit)
            return self._result(spec, output, model_name, budget, min_pixels, context)

        return self.pool.submit(work)

    def _result(
        self,
        spec: TaskSpec,
        output: GenerationOutput,
        model_name: str,
        budget: int,
        min_pixels: int,
        context: JobContext,
    ) -> TaskResult:
        return TaskResult(
            task=spec.task,
            text=output.text,
            model=model_name,
            finish_reason=output.finish_reason,
            usage=Usage(
                prompt_tokens=output.prompt_tokens,
                image_tokens=output.image_tokens,
                completion_tokens=output.completion_tokens,
            ),
            timings=Timings(
                queue_ms=round(context.queue_ms, 1),
                prefill_ms=round(output.prefill_ms, 1),
                decode_ms=round(output.decode_ms, 1),
                total_ms=round(context.elapsed_ms, 1),
            ),
            images=[self._image_usage(item, budget, min_pixels) for item in spec.images],
        )

    @staticmethod
    def _image_usage(item: StoredImage, budget: int, min_pixels: int) -> ImageUsage:
        width, height = fitted_size(item.decoded.width, item.decoded.height, budget, min_pixels)
        return ImageUsage(
            image_id=item.image_id,
            width=item.decoded.width,
            height=item.decoded.height,
            model_width=width,
            model_height=height,
            pixel_budget=budget,
            visual_tokens=visual_tokens(width, height),
        )

    async def run(self, spec: TaskSpec, is_disconnected: Callable[[], Awaitable[bool]]) -> TaskResult:
        """Run a task for an HTTP client; a client that disconnects cancels its job."""
        job = self.submit(spec)
        watcher = asyncio.create_task(_cancel_on_disconnect(job, is_disconnected))
        try:
            return await job.result()
        except JobCancelled:
            raise ClientGone("the client closed the request") from None
        finally:
            watcher.cancel()


async def _cancel_on_disconnect(job: Job[TaskResult], is_disconnected: Callable[[], Awaitable[bool]]) -> None:
    while not await is_disconnected():
        await asyncio.sleep(0.25)
    job.cancel()
