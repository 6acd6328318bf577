"""Field extraction: the page's text first (a PDF's text layer, or the fast OCR engine), then the
vision-language model, constrained to the schema, reads the image with that text beside it."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from imagesense import budgets
from imagesense.documents.service import DocumentService
from imagesense.documents.store import StoredDocument
from imagesense.errors import ModelUnavailable, ValidationFailed
from imagesense.presets import preset_schema
from imagesense.schemas.extract import MAX_OCR_HINT_CHARS, ExtractResult, Preset
from imagesense.schemas.tasks import TaskOptions
from imagesense.service import TaskService, TaskSpec
from imagesense.store import StoredImage

log = logging.getLogger(__name__)
Disconnected = Callable[[], Awaitable[bool]]


@dataclass(frozen=True)
class ExtractRequest:
    source: StoredImage | StoredDocument
    pages: str | None
    schema: Mapping[str, Any] | None
    preset: Preset | None
    use_text: bool
    options: TaskOptions
    client: str


def chosen_schema(schema: Mapping[str, Any] | None, preset: Preset | None) -> Mapping[str, Any]:
    if (schema is None) == (preset is None):
        raise ValidationFailed("send exactly one of `json_schema` or `preset`", field="json_schema")
    return schema if schema is not None else preset_schema(preset)  # type: ignore[arg-type]


class Extraction:
    def __init__(self, service: TaskService, documents: DocumentService) -> None:
        self.service = service
        self.documents = documents

    async def run(self, request: ExtractRequest, is_disconnected: Disconnected) -> ExtractResult:
        schema = chosen_schema(request.schema, request.preset)
        deadline = self.service.deadline_from_now()  # renders, PDFium waits, the OCR job and the VLM job share it
        pages = self._pages(request)
        images = await self._images(request, pages, deadline)
        began = time.perf_counter()
        text = await self._text(request, images, pages, deadline, is_disconnected) if request.use_text else None
        ocr_ms = (time.perf_counter() - began) * 1000
        spec = TaskSpec(
            "extract", images, request.options, client=request.client, json_schema=schema, document_text=text,
            deadline=deadline,
        )  # fmt: skip
        result = await self.service.complete(spec, is_disconnected)
        return ExtractResult(
            data=result.data,
            valid=result.data is not None,
            preset=request.preset,
            json_schema=dict(schema),
            text=result.text,
            model=result.model,
            finish_reason=result.finish_reason,
            ocr_text_used=bool(text),
            ocr_ms=round(ocr_ms, 1),
            usage=result.usage,
            timings=result.timings,
            images=result.images,
        )

    def _pages(self, request: ExtractRequest) -> list[int]:
        if isinstance(request.source, StoredImage):
            return []
        return self.documents.pages_for_images(request.source, request.pages)

    async def _images(self, request: ExtractRequest, pages: list[int], deadline: float) -> list[StoredImage]:
        if isinstance(request.source, StoredImage):
            return [request.source]
        budget = budgets.pixel_budget("extract", request.options, self.service.settings)
        return await self.documents.page_images(request.source, pages, budget, deadline)

    async def _text(
        self, request: ExtractRequest, images: list[StoredImage], pages: list[int], deadline: float, gone: Disconnected
    ) -> str | None:
        """The pages' text for the prompt; None when there is none to be had (no fast engine for a scan)."""
        try:
            if isinstance(request.source, StoredDocument):
                job = self.documents.submit_ocr(request.source, pages, request.client, deadline)
                read = await self.service.follow(job, gone)
            else:
                ocr = TaskSpec("ocr", images, TaskOptions(engine="fast"), client=request.client, deadline=deadline)
                read = await self.service.complete(ocr, gone)
        except ModelUnavailable as unavailable:
            log.info("extract without the page's text: %s", unavailable.message)
            return None
        return read.text[:MAX_OCR_HINT_CHARS] or None
