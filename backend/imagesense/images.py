"""Decode, validate and resize images. Pure Pillow: no model code here."""

from __future__ import annotations

import io
import logging
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imagesense.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from imagesense.schemas.images import ImageFormat

log = logging.getLogger(__name__)
# Pillow format name -> API format. MPO is what many phones write: a JPEG with extra frames.
_FORMATS: dict[str, ImageFormat] = {
    "JPEG": "jpeg", "MPO": "jpeg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp", "TIFF": "tiff",
}  # fmt: skip
MAX_ASPECT_RATIO = 200  # the vision encoder's limit
VISUAL_TOKEN_EDGE = 32  # one visual token covers 32×32 px
_OPENERS = ["JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF"]  # the JPEG opener also yields MPO
DRAFT_ABOVE_PIXELS = 16_000_000  # 4000×4000: more than any pixel budget, and than OCR needs
_HIGH_BIT_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


@dataclass(frozen=True)
class DecodedImage:
    """An upload turned into what the model reads: RGB, upright."""

    image: Image.Image
    format: ImageFormat
    byte_size: int

    @property
    def width(self) -> int:
        return self.image.width

    @property
    def height(self) -> int:
        return self.image.height


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int, field: str = "file") -> DecodedImage:
    """Decode an upload, or raise a typed 4xx error that names ``field`` and the limit."""
    if not data:
        raise InvalidImage("the file is empty", field=field)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the file has {len(data)} bytes; the limit is {max_bytes} bytes", field=field)
    with warnings.catch_warnings():
        # The pixel limit is checked below, against our own setting, before any pixel is decoded.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = _open(data, field)
        _check_pixels(image.width, image.height, max_pixels, field)
        image.seek(0)  # animated GIF / multi-page TIFF / MPO: the first frame
        if image.format == "JPEG":
            # Decode a huge JPEG at a reduced scale straight from its DCT data: no budget needs it whole.
            image.draft("RGB", _draft_size(image.width, image.height))
        try:
            image.load()
        except (OSError, SyntaxError, ValueError) as exc:
            log.info("undecodable image: %r", exc)
            raise InvalidImage("the image is truncated or corrupt", field=field) from exc
    api_format = _FORMATS[str(image.format)]
    ImageOps.exif_transpose(image, in_place=True)  # upright; in place: no copy of a possibly huge image
    return DecodedImage(image=to_rgb(image), format=api_format, byte_size=len(data))


def _open(data: bytes, field: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=_OPENERS)
    except Image.DecompressionBombError as exc:  # Pillow's own hard limit, far above ours
        # Pillow's message names the pixel count and its limit: nothing of the server's in it.
        raise PayloadTooLarge(f"the image has too many pixels ({exc})", field=field) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        accepted = ", ".join(sorted(set(_FORMATS.values())))
        raise UnsupportedMediaType(f"not a supported image; accepted formats: {accepted}", field=field) from exc


def _check_pixels(width: int, height: int, max_pixels: int, field: str) -> None:
    if width < 1 or height < 1:
        raise InvalidImage("the image has no pixels", field=field)
    if width * height > max_pixels:
        raise PayloadTooLarge(
            f"the image is {width}×{height} = {width * height} pixels; the limit is {max_pixels} pixels",
            field=field,
        )
    if max(width, height) / min(width, height) > MAX_ASPECT_RATIO:
        raise ValidationFailed(
            f"the image is {width}×{height}; its aspect ratio must be at most {MAX_ASPECT_RATIO}:1",
            field=field,
        )


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode to 8-bit RGB: alpha is flattened on white, 16-bit and float are rescaled."""
    if image.mode == "RGB":
        return image
    if image.mode in _HIGH_BIT_MODES:
        return _high_bit_to_rgb(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in _ALPHA_MODES:
        # Pasted on white through its own alpha band: one RGB image beside the decoded one, no copies.
        rgba = image if image.mode == "RGBA" else image.convert("RGBA")
        flat = Image.new("RGB", image.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba)
        return flat
    return image.convert("RGB")


def _high_bit_to_rgb(image: Image.Image) -> Image.Image:
    """16-bit and 32-bit gray to 8 bits, in place on an integer (or float32) copy, never float64."""
    if image.mode == "F":
        values = np.array(image, dtype=np.float32)  # a writable copy, scaled in place
        low, high = float(values.min()), float(values.max())
        values -= low
        values *= 255.0 / (high - low or 1.0)
        gray = values.astype(np.uint8)
    else:
        # 16-bit data is stored in 32-bit ints: scale by the range the format can hold.
        levels = np.asarray(image)
        gray = (levels >> 8 if levels.max() > 255 else np.clip(levels, 0, 255)).astype(np.uint8)
    return Image.fromarray(gray, mode="L").convert("RGB")


def _draft_size(width: int, height: int) -> tuple[int, int]:
    """The smallest size a JPEG may be drafted to: the fast OCR engine reads at the original size, so
    only images above ``DRAFT_ABOVE_PIXELS`` are reduced, and never below it."""
    if width * height <= DRAFT_ABOVE_PIXELS:
        return width, height
    scale = math.sqrt(DRAFT_ABOVE_PIXELS / (width * height))
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def fitted_size(width: int, height: int, max_pixels: int, min_pixels: int) -> tuple[int, int]:
    """The size the vision encoder gets: both sides multiples of 32, area within [min, max], aspect kept.

    This is the processor's own rule (Qwen's `smart_resize`), so resizing to it here leaves the processor
    nothing to change and lets estimates be computed without the model.
    """
    factor = VISUAL_TOKEN_EDGE
    fitted_h = max(factor, round(height / factor) * factor)
    fitted_w = max(factor, round(width / factor) * factor)
    if fitted_h * fitted_w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        fitted_h = max(factor, math.floor(height / beta / factor) * factor)
        fitted_w = max(factor, math.floor(width / beta / factor) * factor)
    elif fitted_h * fitted_w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        fitted_h = math.ceil(height * beta / factor) * factor
        fitted_w = math.ceil(width * beta / factor) * factor
    return fitted_w, fitted_h


def visual_tokens(width: int, height: int) -> int:
    return (width // VISUAL_TOKEN_EDGE) * (height // VISUAL_TOKEN_EDGE)


def fit_to_budget(image: Image.Image, max_pixels: int, min_pixels: int) -> Image.Image:
    """Resize to the pixel budget (a no-op when the image already has the fitted size)."""
    size = fitted_size(image.width, image.height, max_pixels, min_pixels)
    if size == image.size:
        return image
    # reducing_gap: a cheap box reduction first, then bicubic, so a 12 MP photo resizes in milliseconds.
    return image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0)
