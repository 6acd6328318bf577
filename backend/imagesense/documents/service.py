"""Documents as tasks: a PDF's pages read (text layer, else fast OCR of a render) page by page on the
OCR pool, or rendered at a task's pixel budget for the vision-language model."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Sequence

from PIL import Image

from imagesense import budgets
from imagesense.documents.pages import select_pages
from imagesense.documents.pdf import Pdfium, is_pdf, page_size
from imagesense.documents.store import DocumentStore, StoredDocument
from imagesense.engine.protocol import OcrEngine
from imagesense.errors import PayloadTooLarge, ValidationFailed
from imagesense.handles import TaskHandle
from imagesense.images import DecodedImage
from imagesense.jobs import Job, JobCancelled, JobContext
from imagesense.ocr.results import lay_out
from imagesense.schemas.tasks import AnyTaskResult, OcrResult, PageOcr, TaskOptions, Timings, Usage
from imagesense.service import TaskService, TaskSpec
from imagesense.store import StoredImage, content_id

PAGE_BREAK = "\n\n"
TEXT_LAYER = "pdf_text"


class DocumentService:
    def __init__(self, service: TaskService, store: DocumentStore, pdfium: Pdfium) -> None:
        self.service = service
        self.store = store
        self.pdfium = pdfium

    @property
    def wait_s(self) -> float:
        """How long a PDF call outside any task may wait for PDFium (an upload): a request's whole time."""
        return self.service.settings.job_timeout_s

    @staticmethod
    def wait_until(deadline: float) -> float:
        """How long a PDF call may wait for PDFium within a request due by ``deadline``."""
        return max(0.0, deadline - time.monotonic())

    async def ocr(
        self, document: StoredDocument, selection: str | None, options: TaskOptions, client: str
    ) -> TaskHandle[AnyTaskResult]:
        """OCR of a document's pages by the engine ``options.engine`` picks (``document_ocr_engine``):
        the VLM reads the pages rendered at the OCR budget (as many as a request may carry); otherwise
        text layers are read exactly and scans by the fast engine, page by page. One deadline from now
        covers the renders, the PDFium waits and the job."""
        deadline = self.service.deadline_from_now()
        numbers = select_pages(selection, len(document.pages))
        scanned = any(not document.pages[number - 1].has_text for number in numbers)
        if not self._vlm_reads(options, scanned):
            return self.submit_ocr(document, numbers, client, deadline)
        budget = budgets.pixel_budget("ocr", options, self.service.settings)
        images = await self.pages_as_images(document, selection, budget, deadline=deadline)
        vlm_options = options.model_copy(update={"engine": "vlm"})
        return await self.service.submit(TaskSpec("ocr", images, vlm_options, client=client, deadline=deadline))

    async def upload(self, owner: str, data: bytes, password: str | None, field: str = "file") -> StoredDocument:
        limit = self.service.settings.max_upload_bytes
        if len(data) > limit:
            raise PayloadTooLarge(f"the file has {len(data)} bytes; the limit is {limit} bytes", field=field)
        if not is_pdf(data):
            raise ValidationFailed(f"{field}: not a PDF", field=field)
        pages = await asyncio.to_thread(self.pdfium.inspect, data, password or None, field, self.wait_s)
        document = StoredDocument(owner, content_id(data), data, password or None, pages)
        return await self.store.add(document)

    def pages_for_images(self, document: StoredDocument, selection: str | None, limit: int | None = None) -> list[int]:
        """The pages a task reads as images: the selection (at most ``limit``, by default the images a
        request may carry), or the first ``limit``."""
        limit = self.service.settings.max_images_per_request if limit is None else limit
        numbers = select_pages(selection, len(document.pages))
        if selection and len(numbers) > limit:
            raise ValidationFailed(f"pages: {len(numbers)} pages selected; the limit is {limit}", field="pages")
        return numbers[:limit]

    def _vlm_reads(self, options: TaskOptions, scanned_pages: bool) -> bool:
        """Whether the VLM reads a PDF's pages: when asked, or for scans under auto when the fast engine
        is down and the VLM is up; else text layers are read and scans go to the fast engine."""
        requested = options.engine or self.service.settings.ocr_engine
        engines = self.service.engines
        fast_down = scanned_pages and not engines.fast_ocr.ready and engines.vlm.ready
        return requested == "vlm" or (requested == "auto" and fast_down)

    async def pages_as_images(
        self,
        document: StoredDocument,
        selection: str | None,
        max_pixels: int,
        limit: int | None = None,
        deadline: float | None = None,
    ) -> list[StoredImage]:
        """The pages a task reads as images (``pages_for_images``), rendered to ``max_pixels``."""
        numbers = self.pages_for_images(document, selection, limit)
        return await self.page_images(document, numbers, max_pixels, deadline)

    async def page_images(
        self, document: StoredDocument, numbers: list[int], max_pixels: int, deadline: float | None = None
    ) -> list[StoredImage]:
        """Pages rendered to ``max_pixels``, as images in the image store (a page at a budget renders once);
        PDFium waits count against ``deadline`` (by default: a request's time from now)."""
        deadline = deadline or self.service.deadline_from_now()
        images = []
        for number in numbers:
            image_id = f"{document.document_id}-p{number}-{max_pixels}"
            if (known := await self.service.store.lookup(document.owner, image_id)) is None:
                rendered = await asyncio.to_thread(self.render, document, number, max_pixels, self.wait_until(deadline))
                known = self.service.store.put(document.owner, image_id, DecodedImage(rendered, "pdf", 0))
            images.append(known)
        return images

    def render(self, document: StoredDocument, number: int, max_pixels: int, wait_s: float) -> Image.Image:
        return self.pdfium.render(document.data, document.password, number, max_pixels, "file", wait_s)

    def submit_ocr(
        self, document: StoredDocument, numbers: list[int], client: str, deadline: float | None = None
    ) -> Job[OcrResult]:
        """OCR of a document's pages, one by one on the fast OCR pool; text-layer pages need no OCR engine.
        The job, and every PDFium wait inside it, ends by ``deadline`` (by default a request's time from now)."""
        deadline = deadline or self.service.deadline_from_now()
        scanned = [number for number in numbers if not document.pages[number - 1].has_text]
        engine = self.service.engines.fast_ocr.get() if scanned else None  # 503 now if scanned pages need it
        budget = self.service.settings.vision_max_pixels  # the largest render: the fast engine reads fine print
        reader = _PageReader(self, document, budget, engine, deadline)

        def work(context: JobContext) -> OcrResult:
            pages: list[PageOcr] = []
            for done, number in enumerate(numbers):
                if context.should_stop():
                    raise JobCancelled
                pages.append(reader.read(number))
                context.emit((PAGE_BREAK if done else "") + pages[-1].text)
                context.progress(done + 1, len(numbers))
            return _document_result(document, pages, engine.name if engine else TEXT_LAYER, context)

        job = self.service.engines.ocr_pool.submit(work, deadline, client=client)
        self.service.outcomes.watch("ocr", job)
        return job

    @staticmethod
    async def png(image: StoredImage) -> bytes:
        """The image as PNG bytes, encoded off the event loop."""

        def encode() -> bytes:
            buffer = io.BytesIO()
            image.decoded.image.save(buffer, "PNG")
            return buffer.getvalue()

        return await asyncio.to_thread(encode)

    async def resolve(self, owner: str, document_id: str) -> StoredDocument:
        return await self.store.fetch(owner, document_id)


class _PageReader:
    def __init__(
        self,
        documents: DocumentService,
        document: StoredDocument,
        budget: int,
        engine: OcrEngine | None,
        deadline: float,
    ) -> None:
        self._documents = documents
        self._document = document
        self._budget = budget
        self._engine = engine
        self._deadline = deadline

    def read(self, number: int) -> PageOcr:
        began = time.perf_counter()
        info = self._document.pages[number - 1]
        width, height = page_size(info.width_pt, info.height_pt, self._budget)
        if info.has_text:
            wait_s = self._documents.wait_until(self._deadline)
            page = self._documents.pdfium.text(
                self._document.data, self._document.password, number, self._budget, "file", wait_s
            )
            lines, rotation = list(page.lines), 0
        else:
            assert self._engine is not None
            image = self._documents.render(
                self._document, number, self._budget, self._documents.wait_until(self._deadline)
            )
            width, height = image.size
            reading = self._engine.read(image)
            lines, rotation = list(reading.lines), reading.rotation
        laid_out = lay_out(lines, rotation, width, height)  # type: ignore[arg-type]
        return PageOcr(
            page=number,
            source="pdf_text" if info.has_text else "ocr",
            text=laid_out.text,
            lines=laid_out.lines,
            markdown=laid_out.markdown,
            blocks=laid_out.blocks,
            tables=laid_out.tables,
            width=width,
            height=height,
            elapsed_ms=round((time.perf_counter() - began) * 1000, 1),
        )


def _document_result(document: StoredDocument, pages: Sequence[PageOcr], model: str, context: JobContext) -> OcrResult:
    return OcrResult(
        text=PAGE_BREAK.join(page.text for page in pages),
        model=model,
        finish_reason="stop",
        usage=Usage(prompt_tokens=0, image_tokens=0, completion_tokens=0),
        timings=Timings(
            queue_ms=round(context.queue_ms, 1),
            prefill_ms=round(sum(page.elapsed_ms for page in pages), 1),
            decode_ms=0.0,
            total_ms=round(context.elapsed_ms, 1),
        ),
        images=[],
        engine="fast",
        lines=[],
        markdown=PAGE_BREAK.join(page.markdown or page.text for page in pages) or None,
        rotation=None,
        document_id=document.document_id,
        pages=list(pages),
    )
