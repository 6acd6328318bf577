"""The fast OCR engine: PP-OCR (detection, recognition) through RapidOCR on ONNX Runtime.

RapidOCR ships its models inside the wheel, so this engine works on a machine with no network at all.

The page's orientation is decided once, for the whole page, before any line is read: the detector's
boxes say whether text runs across or down the image, and the recognizer reads the longest lines both
ways up — upside-down text reads with clearly lower confidence, in Latin and CJK alike. Every line is
then read upright in one batch. (PP-OCR's per-line orientation classifier, which this replaces, flips
lines one by one and so mixes orientations on a page; it also voted wrong on rotated English pages.)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from imagesense.engine.protocol import OcrReading, Point, Rotation, TextLine

log = logging.getLogger(__name__)

ENGINE_NAME = "rapidocr PP-OCRv6 (onnxruntime)"
ORIENTATION_SAMPLES = 6  # the longest lines are read both ways up to decide the page's orientation
MIN_TEXT_SCORE = 0.5  # RapidOCR's own threshold: lines read with less confidence are dropped


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

        self._ocr = RapidOCR(params=_ocr_params(threads, use_det=True, use_cls=False, use_rec=False))

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
        page = image.convert("RGB")
        boxes = self._detect(page)
        lines: list[TextLine] = []
        rotation: Rotation = 0
        if boxes:
            vertical = page_is_vertical(boxes)
            crops = [crop_line(page, box, vertical) for box in boxes]
            flipped, readings = self._orientation(boxes, crops)
            rest = [i for i in range(len(crops)) if i not in readings]
            turn = Image.Transpose.ROTATE_180 if flipped else None
            read = self._recognize([crop.transpose(turn) if turn else crop for crop in (crops[i] for i in rest)])
            readings.update(zip(rest, read, strict=True))
            lines = [
                TextLine(text=text, confidence=round(score, 4), box=boxes[i])
                for i, (text, score) in sorted(readings.items())
                if text.strip() and score >= MIN_TEXT_SCORE
            ]
            rotation = rotation_from(vertical, flipped)
        return OcrReading(lines, rotation, (time.perf_counter() - started) * 1000)

    def _detect(self, page: Image.Image) -> list[tuple[Point, Point, Point, Point]]:
        output = self._ocr(np.asarray(page), use_det=True, use_cls=False, use_rec=False)
        found = getattr(output, "boxes", None)
        if found is None:
            return []
        return [tuple((float(x), float(y)) for x, y in box) for box in np.asarray(found).tolist()]  # type: ignore[misc]

    def _recognize(self, crops: list[Image.Image]) -> list[tuple[str, float]]:
        if not crops:
            return []
        output = self._ocr.recognize_txt([np.asarray(crop) for crop in crops])
        return [(str(text), float(score)) for text, score in zip(output.txts or (), output.scores or (), strict=True)]

    def _orientation(
        self, boxes: Sequence[Sequence[Point]], crops: list[Image.Image]
    ) -> tuple[bool, dict[int, tuple[str, float]]]:
        """Read the longest lines as cropped and turned 180°: the way that reads with more confidence
        (weighted by line length) is the page's way up. Returns it and those lines' readings that way."""
        longest = sorted(range(len(crops)), key=lambda i: _length(boxes[i]), reverse=True)[:ORIENTATION_SAMPLES]
        samples = [crops[i] for i in longest]
        readings = self._recognize(samples + [crop.transpose(Image.Transpose.ROTATE_180) for crop in samples])
        as_cropped, turned = readings[: len(samples)], readings[len(samples) :]
        weights = [_length(boxes[i]) for i in longest]
        flipped = _weighted_confidence(weights, turned) > _weighted_confidence(weights, as_cropped)
        return flipped, dict(zip(longest, turned if flipped else as_cropped, strict=True))


def crop_line(page: Image.Image, box: Sequence[Point], vertical: bool) -> Image.Image:
    """The line's quadrilateral straightened into a rectangle, turned so text runs left to right when
    the page's text runs down the image (turned 90° counter-clockwise, as ``rotation_from`` expects)."""
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = box
    width = max(1, round(max(math.dist(box[0], box[1]), math.dist(box[3], box[2]))))
    height = max(1, round(max(math.dist(box[0], box[3]), math.dist(box[1], box[2]))))
    # PIL's QUAD takes the source corners upper-left, lower-left, lower-right, upper-right.
    quad = (x0, y0, x3, y3, x2, y2, x1, y1)
    crop = page.transform((width, height), Image.Transform.QUAD, quad, Image.Resampling.BICUBIC)
    return crop.transpose(Image.Transpose.ROTATE_90) if vertical else crop


def page_is_vertical(boxes: Sequence[Sequence[Point]]) -> bool:
    """Whether most of the page's text (by length) runs along the image's y axis."""
    down = sum(_length(box) for box in boxes if is_vertical(box))
    return down * 2 > sum(_length(box) for box in boxes)


def is_vertical(box: Sequence[Point]) -> bool:
    """A box whose text runs along the image's y axis (a line on a page turned by 90°)."""
    width = math.dist(box[0], box[1])
    height = math.dist(box[1], box[2])
    return height > 1.5 * width


def _weighted_confidence(weights: list[float], readings: list[tuple[str, float]]) -> float:
    return sum(weight * score for weight, (_, score) in zip(weights, readings, strict=True))


def _length(box: Sequence[Point]) -> float:
    return max(math.dist(box[0], box[1]), math.dist(box[1], box[2]))


def rotation_from(vertical: bool, flipped: bool) -> Rotation:
    """Page rotation from the text direction and whether its crops read upside down.

    Crops of vertical lines are turned 90° counter-clockwise before reading, so a page turned 90° CCW
    yields upside-down crops and one turned 90° clockwise yields upright ones.
    """
    if vertical:
        return 90 if flipped else 270
    return 180 if flipped else 0
