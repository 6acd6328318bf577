"""Uploaded images as the API describes them."""

from typing import Literal

from pydantic import Field

from imagesense.schemas.base import ApiModel

ImageFormat = Literal["jpeg", "png", "webp", "gif", "bmp", "tiff", "pdf"]  # pdf: a rendered page


class ImageInfo(ApiModel):
    image_id: str = Field(description="Content-derived id: the same bytes always give the same id.")
    width: int = Field(description="Width in pixels after EXIF orientation.")
    height: int = Field(description="Height in pixels after EXIF orientation.")
    format: ImageFormat
    bytes: int = Field(description="Size of the uploaded file.")
