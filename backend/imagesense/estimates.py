"""How long a task will take, before running it.

Prefill grows with the visual tokens, faster than linearly (the vision encoder's attention is
quadratic in patches); decode costs a fixed time per token plus a little per token of context. The
coefficients start from `imagesense bench` on Qwen3-VL-2B (int8-weight, 2-core AMD EPYC) and are then
corrected by what this server really measures: after each generation the ratio of measured to
predicted time updates a running factor, so estimates follow the actual machine, model and load.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from imagesense.schemas.tasks import Estimate, ImageUsage, TaskName

# Seconds, from `imagesense bench` (see the README): prefill = a·v + b·v² + c·text; decode per token = d + e·ctx.
PREFILL_PER_VISUAL_TOKEN = 0.0140
PREFILL_PER_VISUAL_TOKEN_SQUARED = 5.7e-6
PREFILL_PER_TEXT_TOKEN = 0.004
DECODE_PER_TOKEN = 0.085
DECODE_PER_TOKEN_PER_CONTEXT = 3.5e-5
FAST_OCR_SECONDS = 0.5
_SMOOTHING = 0.3  # weight of the newest measurement in the running correction


@dataclass(frozen=True)
class ExpectedTime:
    prefill_s: float
    decode_s: float
    basis: str

    @property
    def total_s(self) -> float:
        return self.prefill_s + self.decode_s


class CostModel:
    def __init__(self) -> None:
        self._prefill_factor = 1.0
        self._decode_factor = 1.0
        self._observations = 0
        self._lock = threading.Lock()

    @staticmethod
    def _prefill(visual_tokens: int, text_tokens: int) -> float:
        return (
            PREFILL_PER_VISUAL_TOKEN * visual_tokens
            + PREFILL_PER_VISUAL_TOKEN_SQUARED * visual_tokens**2
            + PREFILL_PER_TEXT_TOKEN * text_tokens
        )

    @staticmethod
    def _decode(context_tokens: int, new_tokens: int) -> float:
        return new_tokens * (DECODE_PER_TOKEN + DECODE_PER_TOKEN_PER_CONTEXT * (context_tokens + new_tokens / 2))

    def estimate(self, visual_tokens: int, text_tokens: int, new_tokens: int) -> ExpectedTime:
        with self._lock:
            prefill = self._prefill(visual_tokens, text_tokens) * self._prefill_factor
            decode = self._decode(visual_tokens + text_tokens, new_tokens) * self._decode_factor
            seen = self._observations
        basis = (
            f"calibrated on {seen} generation(s) on this server"
            if seen
            else "defaults measured for Qwen3-VL-2B on a 2-core CPU (no generation measured here yet)"
        )
        return ExpectedTime(round(prefill, 2), round(decode, 2), basis)

    def task_estimate(
        self, task: TaskName, images: list[ImageUsage], prose_chars: int, new_tokens: int, queued: int
    ) -> Estimate:
        """A VLM task's estimate: its images' visual tokens, ~3 characters a text token beside the prompt's
        own ~24, and up to ``new_tokens`` generated."""
        visual = sum(image.visual_tokens for image in images)
        expected = self.estimate(visual, 24 + prose_chars // 3, new_tokens)
        return Estimate(
            task=task, engine="vlm", images=images, image_tokens=visual, max_new_tokens=new_tokens,
            prefill_s=expected.prefill_s, decode_s=expected.decode_s, total_s=round(expected.total_s, 2),
            queued_ahead=queued, basis=expected.basis,
        )  # fmt: skip

    @property
    def observations(self) -> int:
        """How many generations the correction has learnt from."""
        return self._observations

    def observe(self, visual_tokens: int, text_tokens: int, new_tokens: int, prefill_s: float, decode_s: float) -> None:
        """Fold one measured generation into the running correction factors."""
        predicted_prefill = self._prefill(visual_tokens, text_tokens)
        predicted_decode = self._decode(visual_tokens + text_tokens, max(new_tokens - 1, 0))
        with self._lock:
            if predicted_prefill > 0 and prefill_s > 0:
                ratio = prefill_s / predicted_prefill
                self._prefill_factor += _SMOOTHING * (ratio - self._prefill_factor)
            if predicted_decode > 0 and decode_s > 0:
                ratio = decode_s / predicted_decode
                self._decode_factor += _SMOOTHING * (ratio - self._decode_factor)
            self._observations += 1


def fast_ocr_estimate(task: TaskName, images: list[ImageUsage], queued: int) -> Estimate:
    return Estimate(
        task=task, engine="fast", images=images, image_tokens=0, max_new_tokens=0, prefill_s=FAST_OCR_SECONDS,
        decode_s=0.0, total_s=FAST_OCR_SECONDS, queued_ahead=queued, basis="fast OCR: ~0.5 s a page",
    )  # fmt: skip
