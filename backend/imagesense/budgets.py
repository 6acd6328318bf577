"""How many pixels and tokens a task gets: the defaults behind `resolution` and `max_new_tokens`.

Pixel budgets are areas (one visual token per 32×32 px), chosen per task:
- OCR reads text, so it gets the most: at 1024² px a 1280×960 screenshot or an A4 scan at ~100 dpi keeps
  ~12 px letters, which the model still reads; below that small print blurs.
- A description needs the scene, not the fine print: 448² px (~192 visual tokens) keeps a photo's
  subjects and layout and costs a tenth of the prefill of 1024².
- A question may be about a detail or a bit of text, so ask sits between: 768² px.
- Extraction reads a document's fields, small print included: OCR's 1024² px.
`low` and `high` are explicit overrides; `max_pixels` overrides both. All are capped by
IMAGESENSE_VISION_MAX_PIXELS.

A conversation keeps the resolution it started with (``EncodingMemory``): at `auto`, describe, ask
and chat about images already encoded for one of them use that encoding's budget, so the common flow —
describe an image, then ask about it — reuses the cached encoding instead of paying a second, larger
one (measured: the first question's prefill drops from a full encode to the question's own tokens).
An explicit `resolution` or `max_pixels` always gets what it asks for.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from imagesense.errors import ValidationFailed
from imagesense.schemas.tasks import TaskName, TaskOptions
from imagesense.settings import Settings


@dataclass(frozen=True)
class Budgets:
    pixels: int  # pixel-area budget per image
    min_pixels: int
    new_tokens: int


AUTO_PIXELS: dict[TaskName, int] = {
    "ocr": 1024 * 1024,
    "describe": 448 * 448,
    "ask": 768 * 768,
    "chat": 768 * 768,
    "extract": 1024 * 1024,
}
LOW_PIXELS = 448 * 448
HIGH_PIXELS = 1536 * 1536

DEFAULT_MAX_NEW_TOKENS: dict[str, int] = {
    "ocr": 1024,
    "describe:brief": 96,
    "describe:detailed": 384,
    "ask": 512,
    "chat": 1024,  # chat clients rarely set a limit, and expect whole answers
    "extract": 1024,  # a page of line items
}


def pixel_budget(task: TaskName, options: TaskOptions, settings: Settings) -> int:
    cap = settings.vision_max_pixels
    if options.max_pixels is not None:
        if options.max_pixels > cap:
            raise ValidationFailed(
                f"max_pixels is {options.max_pixels}; the limit is {cap} (IMAGESENSE_VISION_MAX_PIXELS)",
                field="max_pixels",
            )
        return max(options.max_pixels, settings.vision_min_pixels)
    chosen = {"low": LOW_PIXELS, "high": HIGH_PIXELS, "auto": AUTO_PIXELS[task]}[options.resolution]
    return max(min(chosen, cap), settings.vision_min_pixels)


def max_new_tokens(task: TaskName, options: TaskOptions, settings: Settings) -> int:
    limit = settings.max_new_tokens_limit
    if options.max_new_tokens is not None:
        if options.max_new_tokens > limit:
            raise ValidationFailed(
                f"max_new_tokens is {options.max_new_tokens}; the limit is {limit}",
                field="max_new_tokens",
            )
        return options.max_new_tokens
    key = f"describe:{options.detail}" if task == "describe" else task
    return min(DEFAULT_MAX_NEW_TOKENS[key], limit)


CONVERSATION_TASKS: tuple[TaskName, ...] = ("describe", "ask", "chat")
REMEMBERED_ENCODINGS = 4096  # sets of images whose first budget is remembered (least recently used out)


class EncodingMemory:
    """The budget each set of images (by owner-scoped id) was first encoded at for a conversation."""

    def __init__(self, capacity: int = REMEMBERED_ENCODINGS) -> None:
        self._capacity = capacity
        self._budgets: OrderedDict[tuple[str, ...], int] = OrderedDict()
        self._lock = threading.Lock()

    def budget(
        self, task: TaskName, options: TaskOptions, images: tuple[str, ...], chosen: int, *, remember: bool
    ) -> int:
        """``chosen``, or — at auto resolution, for a conversation task — the images' first budget;
        ``remember``: record ``chosen`` as that when there is none yet (a task about to run, not an
        estimate)."""
        if task not in CONVERSATION_TASKS or options.resolution != "auto" or options.max_pixels is not None:
            return chosen
        if not images:
            return chosen
        with self._lock:
            if (known := self._budgets.get(images)) is not None:
                self._budgets.move_to_end(images)
                return known
            if remember:
                self._budgets[images] = chosen
                while len(self._budgets) > self._capacity:
                    self._budgets.popitem(last=False)
        return chosen
