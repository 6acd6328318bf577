"""A generation shaped into the public result types."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from imagesense.engine.constrained import json_grammar, valid_answer
from imagesense.engine.protocol import GenerationResult
from imagesense.errors import GenerationTimeout
from imagesense.images import fitted_size, visual_tokens
from imagesense.jobs import JobContext
from imagesense.schemas.tasks import AnyTaskResult, ImageUsage, OcrResult, TaskName, TaskResult, Timings, Usage
from imagesense.store import StoredImage

log = logging.getLogger(__name__)


def image_usage(item: StoredImage, budget: int, min_pixels: int) -> ImageUsage:
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


def generation_result(
    task: TaskName,
    images: Sequence[StoredImage],
    output: GenerationResult,
    model_name: str,
    budget: int,
    min_pixels: int,
    context: JobContext,
) -> AnyTaskResult:
    fields = {
        "task": task,
        "text": output.text,
        "model": model_name,
        "finish_reason": output.finish_reason,
        "usage": Usage(
            prompt_tokens=output.prompt_tokens,
            image_tokens=output.image_tokens,
            cached_tokens=output.cached_tokens,
            completion_tokens=output.completion_tokens,
        ),
        "timings": Timings(
            queue_ms=round(context.queue_ms, 1),
            prefill_ms=round(output.prefill_ms, 1),
            decode_ms=round(output.decode_ms, 1),
            total_ms=round(context.elapsed_ms, 1),
        ),
        "images": [image_usage(item, budget, min_pixels) for item in images],
    }
    if task == "ocr":
        return OcrResult(**fields, engine="vlm", lines=[], markdown=None, rotation=None, reading_order="model")
    return TaskResult(**fields)


def parsed_json(text: str, schema: Mapping[str, Any]) -> Any:
    """The answer of a constrained generation as data; None (and a warning) if it isn't valid, which
    constrained decoding rules out for an answer that ran to its end."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        log.warning("a constrained answer is not JSON: %s", exc)
        return None
    if (problem := valid_answer(schema, data)) is not None:
        log.warning("a constrained answer is not valid against its schema: %s", problem.splitlines()[0][:300])
        return None
    return data


class SchemaCompiler:
    """JSON schemas become grammars and validators here: two at a time, off the event loop (a 32,000-character
    schema is slow), and within the request's deadline."""

    def __init__(self) -> None:
        self._threads = ThreadPoolExecutor(2, thread_name_prefix="imagesense-schema")

    async def check(self, schema: Mapping[str, Any], field: str, deadline: float) -> None:
        """Raises ``InvalidGenerationRequest`` naming ``field`` for a schema that can't be followed, and
        ``GenerationTimeout`` when compiling it outlasts the deadline."""
        compiling = asyncio.get_running_loop().run_in_executor(self._threads, json_grammar, schema, field)
        try:
            await asyncio.wait_for(compiling, max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            raise GenerationTimeout("compiling the JSON schema took longer than the request may take") from None

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
