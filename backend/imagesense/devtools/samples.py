"""Rendered test pages with exactly known text, and the character error rate to score OCR against them.

Used by the OCR tests and by `imagesense bench-ocr`. Fonts come from Debian packages
(fonts-dejavu-core for Latin, fonts-wqy-microhei for Chinese).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

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


DOCUMENT = [
    "INVOICE No. 2026-1125",
    "Date: 25 November 2026",
    "Bill to: Jane Doe, 42 Main Street",
    "Consulting services 12 hours",
    "Rate per hour: 95.00 EUR",
    "Total due: 1,140.00 EUR",
]
RECEIPT = [
    "CORNER CAFE",
    "Espresso\t2.80",
    "Croissant\t3.20",
    "Orange juice\t4.50",
    "Subtotal\t10.50",
    "VAT 10%\t1.05",
    "TOTAL\t11.55",
    "Thank you!",
]
CHINESE = [
    "发票号码：二零二六一一二五",
    "购买方：北京示例科技有限公司",
    "项目：技术服务费",
    "金额：人民币壹仟贰佰元整",
    "开票日期：2026年11月25日",
]
SIGN = ["NO PARKING", "TOW AWAY ZONE"]
# Each line has a gap in it (a form's label and value): the detector boxes the two parts apart, and
# on a skewed page the right part sits a line's height lower than the left.
PARAGRAPH = [
    "Committee review\tquarterly figures",
    "Revenue growth\televen percent",
    "Operating costs\talmost flat",
    "New warehouse\tLeeds, approved",
    "Next report\tMarch 2027",
    "Prepared by\tthe finance team",
]
LEFT_COLUMN = ["Solar output rose", "sharply in spring,", "helped by clear", "skies and new", "panels on the roof."]
RIGHT_COLUMN = [
    "Wind farms had a",
    "quieter season, but",
    "storage batteries",
    "kept the grid stable",
    "through the nights.",
]
CHINESE_FORM = [
    "发票号码\t二零二六一一二五",
    "购买方\t北京示例科技",
    "项目\t技术服务费",
    "金额\t壹仟贰佰元整",
    "日期\t十一月二十五日",
]
CHINESE_LEFT = ["今年春季光伏发电", "增长明显，主要得益", "于晴朗天气和屋顶", "新安装的组件。"]
CHINESE_RIGHT = ["风电场本季度较为", "平稳，但储能电池", "在夜间保障了电网", "的稳定运行。"]


def _skewed(lines: list[str], degrees: float, kind: str = "latin") -> Image.Image:
    page = render(lines, kind=kind, size=26, width=1100)
    return page.rotate(degrees, expand=True, fillcolor="white", resample=Image.Resampling.BICUBIC)


def _two_columns(left: list[str], right: list[str], kind: str = "latin") -> Image.Image:
    first, second = render(left, kind=kind, width=440), render(right, kind=kind, width=440)
    page = Image.new("RGB", (first.width + second.width + 60, max(first.height, second.height)), "white")
    page.paste(first, (0, 0))
    page.paste(second, (first.width + 60, 0))
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
}


def sample(name: str) -> Sample:
    category, make, lines = SAMPLES[name]
    return Sample(name=name, category=category, image=make(), lines=lines)


def all_samples() -> list[Sample]:
    return [sample(name) for name in SAMPLES]


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
