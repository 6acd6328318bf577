"""Field extraction: a JSON schema (or a preset's) in, data valid against it out."""

from typing import Any, Literal

from pydantic import Field

from imagesense.schemas.base import ApiModel
from imagesense.schemas.tasks import ImageUsage, Timings, Usage

Preset = Literal["invoice", "receipt", "business_card", "product_page", "table"]
MAX_OCR_HINT_CHARS = 8000  # the OCR text given to the model beside the image, at most


class ExtractResult(ApiModel):
    task: Literal["extract"] = "extract"
    data: Any = Field(description="The fields, valid against the schema (null only if `valid` is false).")
    valid: bool = Field(description="`data` validates against the schema.")
    preset: Preset | None
    json_schema: dict[str, Any] = Field(description="The schema the data follows (the preset's, or the one sent).")
    text: str = Field(description="The model's answer as text: `data` as JSON.")
    model: str
    finish_reason: Literal["stop", "length", "repetition", "cancelled"]
    ocr_text_used: bool = Field(description="The page's text (text layer or fast OCR) was given to the model too.")
    ocr_ms: float = Field(description="Time spent reading that text first.")
    usage: Usage
    timings: Timings
    images: list[ImageUsage]
