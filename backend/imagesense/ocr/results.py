"""The fast OCR engine's reading shaped into the public result, and when auto OCR asks the VLM instead."""

from __future__ import annotations

from imagesense.engine.protocol import OcrReading, TextLine
from imagesense.jobs import JobContext
from imagesense.ocr.layout import Block, page_blocks, to_markdown, to_text
from imagesense.schemas.tasks import (
    AnyTaskResult,
    ImageUsage,
    OcrBlock,
    OcrCell,
    OcrLine,
    OcrResult,
    OcrTable,
    Timings,
    Usage,
)
from imagesense.store import StoredImage


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


def fast_ocr_result(output: OcrReading, image: StoredImage, engine_name: str, context: JobContext) -> OcrResult:
    decoded = image.decoded
    blocks = page_blocks(output.lines, output.rotation, decoded.width, decoded.height)
    rows = [row for block in blocks for row in block.rows]
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
        blocks=ocr_blocks(blocks, ordered),
        tables=[ocr_table(block) for block in blocks if block.kind == "table"],
        reading_order="layout",
    )


def ocr_blocks(blocks: list[Block], ordered: list[TextLine]) -> list[OcrBlock]:
    """Blocks with their lines as indices into the result's (ordered) lines."""
    found, start = [], 0
    for block in blocks:
        lines = [line for row in block.rows for line in row]
        xs = [x for line in lines for x, _ in line.box]
        ys = [y for line in lines for _, y in line.box]
        indices = list(range(start, start + len(lines)))
        found.append(OcrBlock(kind=block.kind, box=(min(xs), min(ys), max(xs), max(ys)), lines=indices))
        start += len(lines)
    assert start == len(ordered)
    return found


def ocr_table(block: Block) -> OcrTable:
    cells = [OcrCell(row=r, col=c, text=line.text) for r, row in enumerate(block.rows) for c, line in enumerate(row)]
    return OcrTable(rows=len(block.rows), columns=len(block.rows[0]), cells=cells)


def ocr_needs_fallback(result: AnyTaskResult, min_confidence: float) -> bool:
    """auto OCR: the fast engine found nothing, or read it with low confidence."""
    if not isinstance(result, OcrResult) or result.engine != "fast":
        return False
    if not result.lines:
        return True
    mean = sum(line.confidence for line in result.lines) / len(result.lines)
    return mean < min_confidence
