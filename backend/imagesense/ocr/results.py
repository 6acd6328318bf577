"""The fast OCR engine's reading shaped into the public result, and when auto OCR asks the VLM instead."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from imagesense.engine.protocol import OcrReading, Rotation, TextLine
from imagesense.jobs import JobContext
from imagesense.ocr.layout import Block, page_layout
from imagesense.ocr.markup import cell_text, to_markdown, to_text
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
from imagesense.settings import Settings
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


@dataclass(frozen=True)
class PageText:
    """A page's lines laid out: what an image's OCR result and a PDF page's result both carry."""

    text: str
    lines: list[OcrLine]
    markdown: str | None
    blocks: list[OcrBlock]
    tables: list[OcrTable]
    layout_confidence: float


def lay_out(lines: Sequence[TextLine], rotation: Rotation, width: int, height: int) -> PageText:
    layout = page_layout(lines, rotation, width, height)
    blocks = layout.blocks
    rows = [row for block in blocks for row in block.rows]
    return PageText(
        text=to_text(rows),
        lines=[ocr_line(line) for block in blocks for line in block.lines],
        markdown=to_markdown(blocks) if rows else None,
        blocks=ocr_blocks(blocks),
        tables=[ocr_table(block) for block in blocks if block.kind == "table"],
        layout_confidence=round(layout.confidence, 3),
    )


def ocr_line(line: TextLine) -> OcrLine:
    return OcrLine(text=line.text, confidence=min(1.0, line.confidence), box=list(line.box))


def fast_ocr_result(output: OcrReading, image: StoredImage, engine_name: str, context: JobContext) -> OcrResult:
    decoded = image.decoded
    page = lay_out(output.lines, output.rotation, decoded.width, decoded.height)
    return OcrResult(
        text=page.text,
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
        lines=page.lines,
        markdown=page.markdown,
        rotation=output.rotation,
        blocks=page.blocks,
        tables=page.tables,
        layout_confidence=page.layout_confidence,
        reading_order="layout",
    )


def ocr_blocks(blocks: list[Block]) -> list[OcrBlock]:
    """Blocks with their lines as indices into the page's lines in reading order."""
    found, start = [], 0
    for block in blocks:
        lines = block.lines
        xs = [x for line in lines for x, _ in line.box]
        ys = [y for line in lines for _, y in line.box]
        indices = list(range(start, start + len(lines)))
        found.append(OcrBlock(kind=block.kind, box=(min(xs), min(ys), max(xs), max(ys)), lines=indices))
        start += len(lines)
    return found


def ocr_table(block: Block) -> OcrTable:
    cells = [
        OcrCell(row=r, col=c, text=cell_text(cell)) for r, row in enumerate(block.rows) for c, cell in enumerate(row)
    ]
    return OcrTable(rows=len(block.rows), columns=len(block.rows[0]), cells=cells)


def ocr_needs_fallback(result: AnyTaskResult, settings: Settings) -> bool:
    """auto OCR: the fast engine found nothing, read it with low confidence, or found lines too far
    from level to put in a reading order."""
    if not isinstance(result, OcrResult) or result.engine != "fast":
        return False
    if not result.lines or (result.layout_confidence or 0.0) < settings.ocr_fallback_layout_confidence:
        return True
    mean = sum(line.confidence for line in result.lines) / len(result.lines)
    return mean < settings.ocr_fallback_confidence
