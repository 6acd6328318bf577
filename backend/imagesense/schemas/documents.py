"""Documents (PDF): an upload's pages, and OCR's per-page results."""

from pydantic import Field

from imagesense.schemas.base import ApiModel

MAX_PASSWORD_CHARS = 256
PAGES_DESCRIPTION = 'Pages of a PDF to use, e.g. "1-3,5" (default: all; describe and ask: the first ones that fit).'


class PageInfo(ApiModel):
    page: int = Field(description="From 1.")
    width_pt: float = Field(description="Width in PDF points (1/72 inch).")
    height_pt: float
    has_text: bool = Field(description="The page has a text layer: OCR reads it exactly, in milliseconds.")


class DocumentInfo(ApiModel):
    document_id: str
    bytes: int
    pages: list[PageInfo]
