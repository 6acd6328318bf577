"""The fast OCR engine: PP-OCR (detection, orientation, recognition) through RapidOCR on ONNX Runtime.

RapidOCR ships its models inside the wheel, so this engine works on a machine with no network at all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from imagesense.engine.protocol import OcrReading, Point, Rotation, TextLine

log = logging.getLogger(__name__)

ENGINE_NAME = "rapidocr PP-OCRv6 (onnxruntime)"
_ORIENTATION_SAMPLES = 8  # the longest lines vote on the page's rotation


def _ocr_params(threads: int, **flags: bool) -> dict[str, Any]:
    params: dict[str, Any] = {
        "Global.log_level": "error",  # "no text found" is a result, not a warning
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
        "EngineConfig.onnxruntime.inter_op_num_threads": 1,
    }
    params.update({f"Global.{name}": value for name, value in flags.items()})
    return params


class RapidOcrEngine:
    """Implements ``OcrEngine``."""

    def __init__(self, threads: int) -> None:
        from rapidocr import RapidOCR  # imported here: a missing wheel becomes this engine's load error

        # RapidOCR keeps per-call switches as instance state, so the orientation classifier gets an
        # instance of its own instead of toggling the switches of the shared one between calls.
        self._reader = RapidOCR(params=_ocr_params(threads, use_det=True, use_cls=True, use_rec=True))
        self._classifier = RapidOCR(params=_ocr_params(threads, use_det=False, use_cls=True, use_rec=False))

    def warm_up(self) -> None:
        """Load the ONNX sessions now rather than in the first request."""
        page = Image.new("RGB", (320, 96), "white")
        ImageDraw.Draw(page).text((10, 30), "warm up 123", fill="black")
        self.read(page)

    @property
    def name(self) -> str:
        return ENGINE_NAME

    def read(self, image: Image.Image) -> OcrReading:
        started = time.perf_counter()
        pixels = np.asarray(image.convert("RGB"))
        output = self._reader(pixels)
        lines = self._lines(output)
        rotation = self._rotation(pixels, lines) if lines else 0
        return OcrReading(lines, rotation, (time.perf_counter() - started) * 1000)

    @staticmethod
    def _lines(output: Any) -> list[TextLine]:
        if not getattr(output, "txts", None):
            return []
        lines = []
        for box, text, score in zip(output.boxes, output.txts, output.scores, strict=True):
            corners = tuple((float(x), float(y)) for x, y in np.asarray(box).tolist())
            lines.append(TextLine(text=str(text), confidence=round(float(score), 4), box=corners))  # type: ignore[arg-type]
        return lines

    def _rotation(self, pixels: np.ndarray, lines: list[TextLine]) -> Rotation:
        """Vote over the longest lines: their direction (horizontal or vertical) and whether the
        orientation classifier finds their crops upside down."""
        longest = sorted(lines, key=lambda line: len(line.text), reverse=True)[:_ORIENTATION_SAMPLES]
        vertical_votes = sum(len(line.text) for line in longest if is_vertical(line.box))
        vertical = vertical_votes * 2 > sum(len(line.text) for line in longest)
        flipped_votes = 0.0
        for line in longest:
            if is_vertical(line.box) != vertical:
                continue
            label, score = self._classify(pixels, line, vertical)
            flipped_votes += score if label == "180" else -score
        return rotation_from(vertical, flipped_votes > 0)

    def _classify(self, pixels: np.ndarray, line: TextLine, vertical: bool) -> tuple[str, float]:
        xs = [int(x) for x, _ in line.box]
        ys = [int(y) for _, y in line.box]
        crop = pixels[max(min(ys), 0) : max(ys), max(min(xs), 0) : max(xs)]
        if crop.size == 0:
            return "0", 0.0
        if vertical:
            crop = np.rot90(crop)  # counter-clockwise, as rotation_from expects
        result = self._classifier(np.ascontiguousarray(crop))
        verdicts = getattr(result, "cls_res", None) or [("0", 0.0)]
        label, score = verdicts[0]
        return str(label), float(score)


def is_vertical(box: Sequence[Point]) -> bool:
    """A box whose text runs along the image's y axis (a line on a page turned by 90°)."""
    width = _distance(box[0], box[1])
    height = _distance(box[1], box[2])
    return height > 1.5 * width


def _distance(a: Point, b: Point) -> float:
    return float(((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5)


def rotation_from(vertical: bool, flipped: bool) -> Rotation:
    """Page rotation from the text direction and the orientation classifier's verdict.

    Crops of vertical lines are turned 90° counter-clockwise before classification, so a page turned
    90° CCW yields upside-down crops and one turned 90° clockwise yields upright ones.
    """
    if vertical:
        return 90 if flipped else 270
    return 180 if flipped else 0
