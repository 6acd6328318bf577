"""PDF pages through PDFium (pypdfium2): what a document holds, each page's text layer, and a page
rendered to a pixel-area budget (never a fixed DPI: a poster and a receipt get the same pixels).

PDFium is not thread-safe: every use goes through the one lock of a ``Pdfium``, made in the lifespan,
and a caller waits for it no longer than its deadline allows.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pypdfium2 as pdfium
from PIL import Image

from imagesense.engine.protocol import TextLine
from imagesense.errors import GenerationTimeout, InvalidDocument, PayloadTooLarge

PDF_MAGIC = b"%PDF-"
PDFIUM_PASSWORD_ERROR = 4  # FPDF_ERR_PASSWORD
MAX_RENDER_SCALE = 8.0  # a tiny page is not blown up past 576 dpi


def is_pdf(data: bytes) -> bool:
    return data[:1024].lstrip().startswith(PDF_MAGIC)


@dataclass(frozen=True)
class PageInfo:
    number: int  # from 1
    width_pt: float
    height_pt: float
    has_text: bool  # a text layer with something in it: read, not recognised


@dataclass(frozen=True)
class PageText:
    lines: list[TextLine]  # boxes in pixels of the page at the size asked for
    width: int
    height: int


def page_size(width_pt: float, height_pt: float, max_pixels: int) -> tuple[int, int]:
    """The page's size in pixels when its area is ``max_pixels``."""
    scale = min(MAX_RENDER_SCALE, math.sqrt(max_pixels / (width_pt * height_pt)))
    return max(1, round(width_pt * scale)), max(1, round(height_pt * scale))


class Pdfium:
    """The one way into PDFium: serialized, and bounded by the caller's time."""

    def __init__(self, max_pages: int) -> None:
        self.max_pages = max_pages
        self._lock = threading.Lock()

    @contextmanager
    def _document(self, data: bytes, password: str | None, field: str, wait_s: float) -> Iterator[pdfium.PdfDocument]:
        if not self._lock.acquire(timeout=max(0.0, wait_s)):
            raise GenerationTimeout("the PDF renderer stayed busy past the request's deadline")
        try:
            try:
                document = pdfium.PdfDocument(data, password=password)
            except pdfium.PdfiumError as exc:
                raise _load_problem(exc, password, field) from None
            try:
                yield document
            finally:
                document.close()
        finally:
            self._lock.release()

    def inspect(self, data: bytes, password: str | None, field: str, wait_s: float = 60.0) -> list[PageInfo]:
        """The pages of a document, checked: not empty, not over the page cap."""
        with self._document(data, password, field, wait_s) as document:
            count = len(document)
            if count == 0:
                raise InvalidDocument(f"{field}: the PDF has no pages", field=field)
            if count > self.max_pages:
                raise PayloadTooLarge(
                    f"{field}: the PDF has {count} pages; the limit is {self.max_pages} (IMAGESENSE_MAX_PDF_PAGES)",
                    field=field,
                )
            return [_page_info(document, index) for index in range(count)]

    def render(
        self, data: bytes, password: str | None, number: int, max_pixels: int, field: str, wait_s: float
    ) -> Image.Image:
        with self._document(data, password, field, wait_s) as document:
            page = document[number - 1]
            try:
                width_pt, height_pt = page.get_size()
                width, _ = page_size(width_pt, height_pt, max_pixels)
                bitmap = page.render(scale=width / width_pt, may_draw_forms=True)
                image: Image.Image = bitmap.to_pil().convert("RGB")
                return image
            finally:
                page.close()

    def text(
        self, data: bytes, password: str | None, number: int, max_pixels: int, field: str, wait_s: float
    ) -> PageText:
        """The text layer as lines (PDFium's text runs), in pixels of the page rendered at ``max_pixels``."""
        with self._document(data, password, field, wait_s) as document:
            page = document[number - 1]
            textpage = page.get_textpage()
            try:
                width_pt, height_pt = page.get_size()
                width, height = page_size(width_pt, height_pt, max_pixels)
                scale = width / width_pt
                lines = []
                for index in range(textpage.count_rects()):
                    left, bottom, right, top = textpage.get_rect(index)
                    text = textpage.get_text_bounded(left, bottom, right, top).strip()
                    if text:
                        x0, x1, y0, y1 = (
                            left * scale,
                            right * scale,
                            (height_pt - top) * scale,
                            (height_pt - bottom) * scale,
                        )
                        lines.append(TextLine(text, 1.0, ((x0, y0), (x1, y0), (x1, y1), (x0, y1))))
                return PageText(lines, width, height)
            finally:
                textpage.close()
                page.close()


def _page_info(document: pdfium.PdfDocument, index: int) -> PageInfo:
    page = document[index]
    textpage = page.get_textpage()
    try:
        width_pt, height_pt = page.get_size()
        has_text = bool(textpage.get_text_range().strip())
        return PageInfo(index + 1, width_pt, height_pt, has_text)
    finally:
        textpage.close()
        page.close()


def _load_problem(exc: pdfium.PdfiumError, password: str | None, field: str) -> InvalidDocument:
    if exc.err_code == PDFIUM_PASSWORD_ERROR:
        if password:
            return InvalidDocument(f"{field}: the password is wrong", field="password", code="wrong_password")
        return InvalidDocument(
            f"{field}: the PDF is encrypted; send its password in `password`",
            field="password",
            code="password_required",
        )
    return InvalidDocument(f"{field}: not a readable PDF (corrupt or truncated)", field=field)
