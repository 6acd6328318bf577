"""Rendered test pages with exactly known text, and the character error rate to score OCR against them.

Used by the OCR tests and by `imagesense bench-ocr`. Fonts come from Debian packages
(fonts-dejavu-core for Latin, fonts-wqy-microhei for Chinese).
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from imagesense.devtools.sample_texts import (
    ARC,
    CHINESE,
    CHINESE_FORM,
    CHINESE_LEFT,
    CHINESE_RIGHT,
    DOCUMENT,
    INVOICE_DETAILS,
    INVOICE_ITEMS,
    INVOICE_SENDER,
    INVOICE_TOTAL,
    LEFT_COLUMN,
    PARAGRAPH,
    RECEIPT,
    RIGHT_COLUMN,
    SIGN,
    TABLE_WRAPPED,
)

FONT_FILES = {
    "latin": ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"],
    "cjk": ["/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"],
}


@dataclass(frozen=True)
class Sample:
    name: str
    category: str
    image: Image.Image
    lines: list[str]

    @property
    def text(self) -> str:
        return "\n".join(line.replace("\t", " ") for line in self.lines)


@cache
def font(kind: str, size: int) -> ImageFont.FreeTypeFont:
    for path in FONT_FILES[kind]:
        if Path(path).is_file():
            return ImageFont.truetype(path, size)
    packages = {"latin": "fonts-dejavu-core", "cjk": "fonts-wqy-microhei"}
    raise FileNotFoundError(f"no {kind} font found; install the Debian package {packages[kind]}")


def render(
    lines: list[str],
    *,
    kind: str = "latin",
    size: int = 28,
    width: int = 900,
    ink: str | tuple[int, int, int] = "black",
    paper: str | tuple[int, int, int] = "white",
    margin: int = 40,
) -> Image.Image:
    face = font(kind, size)
    step = int(size * 1.8)
    page = Image.new("RGB", (width, margin * 2 + step * len(lines)), paper)
    draw = ImageDraw.Draw(page)
    for index, line in enumerate(lines):
        top = margin + index * step
        left, _, right = line.partition("\t")  # "item\tprice": the price right-aligned, as on a receipt
        draw.text((margin, top), left, font=face, fill=ink)
        if right:
            draw.text((width - margin - draw.textlength(right, font=face), top), right, font=face, fill=ink)
    return page


def _skewed(lines: list[str], degrees: float, kind: str = "latin") -> Image.Image:
    page = render(lines, kind=kind, size=26, width=1100)
    return page.rotate(degrees, expand=True, fillcolor="white", resample=Image.Resampling.BICUBIC)


def _two_columns(left: list[str], right: list[str], kind: str = "latin") -> Image.Image:
    first, second = render(left, kind=kind, width=440), render(right, kind=kind, width=440)
    page = Image.new("RGB", (first.width + second.width + 60, max(first.height, second.height)), "white")
    page.paste(first, (0, 0))
    page.paste(second, (first.width + 60, 0))
    return page


def _cells_text(rows: list[list[list[str]]]) -> list[str]:
    return [" ".join(" ".join(cell) for cell in row) for row in rows]


def _table(rows: list[list[list[str]]], columns: list[int], width: int, size: int = 24) -> Image.Image:
    """Rows of cells at the given left edges; a cell's lines stack inside its row."""
    face = font("latin", size)
    step = int(size * 1.5)
    heights = [max(len(cell) for cell in row) * step + size for row in rows]
    page = Image.new("RGB", (width, 40 + sum(heights)), "white")
    draw = ImageDraw.Draw(page)
    top = 20
    for row, height in zip(rows, heights, strict=True):
        for left, cell in zip(columns, row, strict=True):
            for index, text in enumerate(cell):
                draw.text((left, top + index * step), text, font=face, fill="black")
        top += height
    return page


def _invoice() -> Image.Image:
    """A header of two blocks side by side (sender, invoice details), line items, a total."""
    sender, details = render(INVOICE_SENDER, size=24, width=420), render(INVOICE_DETAILS, size=24, width=360)
    items = _table(INVOICE_ITEMS, [40, 560, 700], 900)
    total = render(INVOICE_TOTAL, size=24, width=900)
    page = Image.new("RGB", (900, sender.height + 40 + items.height + total.height), "white")
    page.paste(sender, (0, 0))
    page.paste(details, (540, 0))
    page.paste(items, (0, sender.height + 40))
    page.paste(total, (0, sender.height + 40 + items.height))
    return page


def _perspective_page() -> Image.Image:
    """A printed page photographed at an angle: perspective, a dark desk around it, soft focus."""
    paper = render(DOCUMENT, size=26, width=900, paper=(248, 246, 240))
    width, height = paper.size
    quad = (-20, 0, 20, height, width - 20, height + 60, width - 140, -50)  # source corners for the output
    tilted = paper.transform(
        (width, height), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC, fillcolor=(60, 60, 70)
    )
    desk = Image.new("RGB", (width + 120, height + 120), (60, 60, 70))
    desk.paste(tilted, (60, 60))
    return desk.filter(ImageFilter.GaussianBlur(0.8))


def _arc() -> Image.Image:
    """Words set along an arch, as on a shop sign or a stamp: every word at its own angle."""
    face = font("latin", 40)
    page = Image.new("RGB", (900, 560), "white")
    words = ARC[0].split()
    radius, centre_x, centre_y = 360, 450, 470
    for index, word in enumerate(words):
        degrees = 150 - index * 120 / (len(words) - 1)  # from the left end of the arch to the right
        width = int(face.getlength(word)) + 8
        tile = Image.new("L", (width, 56), 0)
        ImageDraw.Draw(tile).text((4, 4), word, font=face, fill=255)
        turned = tile.rotate(degrees - 90, expand=True, resample=Image.Resampling.BICUBIC)
        x = centre_x + radius * math.cos(math.radians(degrees)) - turned.width / 2
        y = centre_y - radius * math.sin(math.radians(degrees)) - turned.height / 2
        page.paste(Image.new("RGB", turned.size, "black"), (int(x), int(y)), turned)
    return page


def _sign() -> Image.Image:
    page = render(SIGN, size=64, width=760, ink=(250, 250, 250), paper=(170, 30, 35), margin=50)
    rng = random.Random(7)
    noisy = page.copy()
    pixels = noisy.load()
    assert pixels is not None
    for _ in range(6000):  # sensor noise
        x, y = rng.randrange(page.width), rng.randrange(page.height)
        shade = rng.randrange(-40, 40)
        red, green, blue = pixels[x, y]  # type: ignore[misc]
        pixels[x, y] = (max(0, min(255, red + shade)), max(0, min(255, green + shade)), max(0, min(255, blue + shade)))
    tilted = noisy.rotate(4, expand=True, fillcolor=(90, 110, 80), resample=Image.Resampling.BICUBIC)
    return tilted.filter(ImageFilter.GaussianBlur(1.2))


def _receipt_photo() -> Image.Image:
    """A receipt photographed on a table: perspective, uneven light, JPEG compression."""
    paper = render(RECEIPT, size=24, width=420, paper=(245, 242, 232))
    table = Image.new("RGB", (760, 820), (92, 70, 52))
    # Perspective: the receipt's corners land on a slightly skewed quadrilateral.
    width, height = paper.size
    quad = (8, 0, 0, height, width, height - 14, width - 20, 10)  # source corners for the output rectangle
    skewed = paper.transform((width, height), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)
    table.paste(skewed, (150, 120))
    shade = Image.linear_gradient("L").resize(table.size).rotate(35)
    lit = Image.composite(
        table, Image.new("RGB", table.size, (30, 25, 20)), shade.point(lambda v: 150 + v * 105 // 255)
    )
    buffer = io.BytesIO()
    lit.save(buffer, "JPEG", quality=70)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


SAMPLES: dict[str, tuple[str, Callable[[], Image.Image], list[str]]] = {
    "document": ("document (English)", lambda: render(DOCUMENT), DOCUMENT),
    "receipt": ("receipt", lambda: render(RECEIPT, size=24, width=420), RECEIPT),
    "chinese": ("document (Chinese)", lambda: render(CHINESE, kind="cjk"), CHINESE),
    "rotated_90": ("rotated page", lambda: render(DOCUMENT).rotate(90, expand=True), DOCUMENT),
    "upside_down": ("rotated page", lambda: render(DOCUMENT).rotate(180), DOCUMENT),
    "rotated_270": ("rotated page", lambda: render(DOCUMENT).rotate(270, expand=True), DOCUMENT),
    "low_contrast": (
        "low contrast",
        lambda: render(RECEIPT, size=24, width=420, ink=(150, 150, 150), paper=(205, 205, 205)),
        RECEIPT,
    ),
    "sign": ("photo-like sign", _sign, SIGN),
    "skewed_3": ("skewed page", lambda: _skewed(PARAGRAPH, 3), PARAGRAPH),
    "skewed_minus_4": ("skewed page", lambda: _skewed(PARAGRAPH, -4), PARAGRAPH),
    "skewed_zh": ("skewed page", lambda: _skewed(CHINESE_FORM, 3, "cjk"), CHINESE_FORM),
    "two_columns": ("two columns", lambda: _two_columns(LEFT_COLUMN, RIGHT_COLUMN), LEFT_COLUMN + RIGHT_COLUMN),
    "two_columns_zh": (
        "two columns",
        lambda: _two_columns(CHINESE_LEFT, CHINESE_RIGHT, "cjk"),
        CHINESE_LEFT + CHINESE_RIGHT,
    ),
    "receipt_photo": ("photo of a receipt", _receipt_photo, RECEIPT),
    "rotated_zh_90": ("rotated page", lambda: render(CHINESE, kind="cjk").rotate(90, expand=True), CHINESE),
    "rotated_zh_180": ("rotated page", lambda: render(CHINESE, kind="cjk").rotate(180), CHINESE),
    "rotated_zh_270": ("rotated page", lambda: render(CHINESE, kind="cjk").rotate(270, expand=True), CHINESE),
    "skewed_minus_2_zh": ("skewed page", lambda: _skewed(CHINESE_FORM, -2, "cjk"), CHINESE_FORM),
    "skewed_5": ("skewed page", lambda: _skewed(PARAGRAPH, 5), PARAGRAPH),
    "table_wrapped": (
        "table",
        lambda: _table(TABLE_WRAPPED, [40, 200, 560, 680], 820),
        _cells_text(TABLE_WRAPPED),
    ),
    "invoice": (
        "invoice",
        _invoice,
        INVOICE_SENDER + INVOICE_DETAILS + _cells_text(INVOICE_ITEMS) + INVOICE_TOTAL,
    ),
    "perspective_page": ("photo of a page", _perspective_page, DOCUMENT),
}


# Pages whose layout the fast engine can't order (its lines don't run level): auto OCR hands them to
# the VLM. In the benchmark, not in the fast engine's error bounds.
VLM_SAMPLES: dict[str, tuple[str, Callable[[], Image.Image], list[str]]] = {
    "arc": ("text on an arc", _arc, ARC),
}


def sample(name: str) -> Sample:
    category, make, lines = SAMPLES[name] if name in SAMPLES else VLM_SAMPLES[name]
    return Sample(name=name, category=category, image=make(), lines=lines)


def all_samples() -> list[Sample]:
    return [sample(name) for name in [*SAMPLES, *VLM_SAMPLES]]


def character_error_rate(predicted: str, expected: str) -> float:
    """Edit distance over the expected length, ignoring white space (line breaks are scored apart)."""
    got = "".join(predicted.split())
    want = "".join(expected.split())
    previous = list(range(len(got) + 1))
    for i, want_char in enumerate(want, start=1):
        current = [i]
        for j, got_char in enumerate(got, start=1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (want_char != got_char)))
        previous = current
    return previous[-1] / max(1, len(want))
