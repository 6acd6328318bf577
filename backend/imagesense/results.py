"""A generation shaped into the public result types."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import jsonschema

from imagesense.engine.protocol import GenerationResult
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
        jsonschema.validate(data, schema)
    except (ValueError, jsonschema.ValidationError, jsonschema.SchemaError) as exc:
        log.warning("a constrained answer is not valid against its schema: %s", str(exc).splitlines()[0])
        return None
    return data
