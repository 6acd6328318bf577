"""Engine outputs shaped into the public result types."""

from __future__ import annotations

from collections.abc import Sequence

from imagesense.engine.fast_ocr import FastOcrOutput
from imagesense.engine.generation import GenerationOutput
from imagesense.images import fitted_size, visual_tokens
from imagesense.layout import reading_order, to_markdown, to_text
from imagesense.pool import JobContext
from imagesense.schemas.tasks import (
    AnyTaskResult,
    ImageUsage,
    OcrLine,
    OcrResult,
    TaskName,
    TaskResult,
    Timings,
    Usage,
)
from imagesense.store import StoredImage


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


def fast_image_usage(item: StoredImage) -> ImageUsage:
    """The fast engine reads the image at its own size: no pixel budget, no visual tokens."""
    width, height = item.decoded.width, item.decoded.height
    return ImageUsage(
        image_id=item.image_id,
        width=width,
        height=height,
        model_width=width,
        model_height=height,
        pixel_budget=width * height,
        visual_tokens=0,
    )


def generation_result(
    task: TaskName,
    images: Sequence[StoredImage],
    output: GenerationOutput,
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
        return OcrResult(**fields, engine="vlm", lines=[], markdown=None, rotation=None)
    return TaskResult(**fields)


def fast_ocr_result(output: FastOcrOutput, image: StoredImage, engine_name: str, context: JobContext) -> OcrResult:
    decoded = image.decoded
    rows = reading_order(output.lines, output.rotation, decoded.width, decoded.height)
    ordered = [line for row in rows for line in row]
    text = to_text(rows)
    return OcrResult(
        text=text,
        model=engine_name,
        finish_reason="stop",
        usage=Usage(prompt_tokens=0, image_tokens=0, completion_tokens=0),
        # The whole read happens before any text exists: it is all "prefill".
        timings=Timings(
            queue_ms=round(context.queue_ms, 1),
            prefill_ms=round(output.elapsed_ms, 1),
            decode_ms=0.0,
            total_ms=round(context.elapsed_ms, 1),
        ),
        images=[fast_image_usage(image)],
        engine="fast",
        lines=[OcrLine(text=line.text, confidence=min(1.0, line.confidence), box=list(line.box)) for line in ordered],
        markdown=to_markdown(rows) if rows else None,
        rotation=output.rotation,
    )


def ocr_needs_fallback(result: AnyTaskResult, min_confidence: float) -> bool:
    """auto OCR: the fast engine found nothing, or read it with low confidence."""
    if not isinstance(result, OcrResult) or result.engine != "fast":
        return False
    if not result.lines:
        return True
    mean = sum(line.confidence for line in result.lines) / len(result.lines)
    return mean < min_confidence
