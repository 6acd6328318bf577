"""Uploaded images as the API describes them."""

from typing import Literal

from pydantic import Field

from imagesense.schemas.base import ApiModel

# Which image (or document) a request is about, for a load balancer in front of replicas to route on
# (frontend/nginx.conf); the stream, which can't carry headers, says it as ?image=. The service itself
# ignores it. Image and document ids are the first 32 hex digits of the file's SHA-256, so a client can
# name an upload's id before the upload.
ROUTE_HEADER = "X-ImageSense-Image"

ImageFormat = Literal["jpeg", "png", "webp", "gif", "bmp", "tiff", "pdf"]  # pdf: a rendered page


class ImageInfo(ApiModel):
    image_id: str = Field(description="Content-derived id: the same bytes always give the same id.")
    width: int = Field(description="Width in pixels after EXIF orientation.")
    height: int = Field(description="Height in pixels after EXIF orientation.")
    format: ImageFormat
    bytes: int = Field(description="Size of the uploaded file.")
