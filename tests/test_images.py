"""Image decoding, validation and resizing (unit tests of imagesense.images)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imagesense.errors import InvalidImage, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from imagesense.images import decode_image, fit_to_budget, fitted_size, to_rgb, visual_tokens
from support import image_bytes

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 40_000_000}


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [("JPEG", "jpeg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"), ("BMP", "bmp"), ("TIFF", "tiff")],
)
def test_every_accepted_format_decodes_to_rgb(fmt: str, expected: str) -> None:
    decoded = decode_image(image_bytes((64, 48), fmt, color="red"), **LIMITS)
    assert decoded.format == expected
    assert (decoded.width, decoded.height) == (64, 48)
    assert decoded.image.mode == "RGB"
    red, green, blue = decoded.image.getpixel((10, 10))  # type: ignore[misc]
    assert red > 200
    assert green < 60
    assert blue < 60


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = image_bytes((60, 20), "JPEG", exif=exif.tobytes())
    decoded = decode_image(data, **LIMITS)
    assert (decoded.width, decoded.height) == (20, 60)


def test_alpha_is_flattened_on_white() -> None:
    data = image_bytes((8, 8), "PNG", mode="RGBA", color=(255, 0, 0, 0))
    assert decode_image(data, **LIMITS).image.getpixel((4, 4)) == (255, 255, 255)


def test_palette_with_transparency_is_flattened_on_white() -> None:
    image = Image.new("P", (8, 8), 0)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    buffer = io.BytesIO()
    image.save(buffer, "GIF", transparency=0)
    assert decode_image(buffer.getvalue(), **LIMITS).image.getpixel((1, 1)) == (255, 255, 255)


def test_cmyk_jpeg_is_converted() -> None:
    data = image_bytes((16, 16), "JPEG", mode="CMYK", color=(0, 255, 255, 0))  # red in CMYK
    red, green, blue = decode_image(data, **LIMITS).image.getpixel((8, 8))  # type: ignore[misc]
    assert red > 200
    assert green < 60
    assert blue < 60


def test_16_bit_grayscale_is_rescaled_not_clipped() -> None:
    pixels = np.full((10, 10), 32768, dtype=np.uint16)  # mid-gray in 16 bits
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    value = decode_image(buffer.getvalue(), **LIMITS).image.getpixel((5, 5))
    assert value[0] == pytest.approx(128, abs=2)  # type: ignore[index]


def test_float_images_are_rescaled() -> None:
    image = Image.fromarray(np.linspace(0, 1, 100, dtype=np.float32).reshape(10, 10), mode="F")
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert rgb.getpixel((0, 0)) == (0, 0, 0)
    assert rgb.getpixel((9, 9)) == (255, 255, 255)


def test_animated_gif_gives_its_first_frame() -> None:
    frames = [Image.new("RGB", (16, 16), color) for color in ("red", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    red, _green, blue = decode_image(buffer.getvalue(), **LIMITS).image.getpixel((8, 8))  # type: ignore[misc]
    assert red > 200
    assert blue < 60


def test_empty_body_is_refused() -> None:
    with pytest.raises(InvalidImage, match="empty") as caught:
        decode_image(b"", **LIMITS, field="files")
    assert caught.value.field == "files"
    assert caught.value.status == 400


def test_not_an_image_is_415() -> None:
    with pytest.raises(UnsupportedMediaType) as caught:
        decode_image(b"%PDF-1.7 definitely not an image", **LIMITS)
    assert caught.value.status == 415
    assert "jpeg" in caught.value.message


def test_truncated_image_is_400() -> None:
    data = image_bytes((200, 200), "JPEG", color="green", quality=95)
    noisy = Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    noisy.save(buffer, "PNG")
    for truncated in (data[: len(data) // 2], buffer.getvalue()[: len(buffer.getvalue()) // 2]):
        with pytest.raises(InvalidImage, match="truncated"):
            decode_image(truncated, **LIMITS)


def test_oversize_file_is_413_with_the_limit() -> None:
    data = image_bytes((100, 100), "BMP")
    with pytest.raises(PayloadTooLarge, match=r"limit is 1000 bytes"):
        decode_image(data, max_bytes=1000, max_pixels=10**9)


def test_decompression_bomb_is_refused_before_decoding() -> None:
    # A 30000×30000 PNG compresses to a few hundred KB but would decode to 2.7 GB.
    buffer = io.BytesIO()
    Image.new("1", (30000, 30000)).save(buffer, "PNG")
    with pytest.raises(PayloadTooLarge, match="900000000 pixels"):
        decode_image(buffer.getvalue(), max_bytes=10**8, max_pixels=40_000_000)


def test_extreme_aspect_ratio_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="aspect ratio"):
        decode_image(image_bytes((4000, 10)), **LIMITS)


@pytest.mark.parametrize(
    ("size", "budget", "expected"),
    [
        ((1280, 960), 448 * 448, (512, 384)),  # 192 visual tokens
        ((1280, 960), 16_777_216, (1280, 960)),  # within budget: kept (multiples of 32)
        ((100, 50), 448 * 448, (96, 64)),  # small: each side rounded to a multiple of 32
        ((40, 20), 448 * 448, (96, 64)),  # tiny: scaled up to the minimum area (4096 px)
    ],
)
def test_fitted_size_follows_the_budget(size: tuple[int, int], budget: int, expected: tuple[int, int]) -> None:
    width, height = fitted_size(*size, max_pixels=budget, min_pixels=4 * 1024)
    assert (width, height) == expected
    assert width % 32 == 0
    assert height % 32 == 0
    assert width * height <= budget


def test_visual_tokens_are_32px_cells() -> None:
    assert visual_tokens(512, 384) == 192
    assert visual_tokens(1280, 960) == 1200


def test_fit_to_budget_resizes_keeping_aspect() -> None:
    image = Image.new("RGB", (4000, 3000))
    fitted = fit_to_budget(image, 1024 * 1024, 4096)
    assert fitted.width * fitted.height <= 1024 * 1024
    assert abs(fitted.width / fitted.height - 4 / 3) < 0.05
    same = Image.new("RGB", (512, 384))
    assert fit_to_budget(same, 448 * 448, 4096) is same
