"""One generation: chat template → processor → ``model.generate`` with streaming and early stops."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from transformers import StoppingCriteriaList

from imagesense.engine.loader import LoadedModel
from imagesense.engine.prompts import Message
from imagesense.engine.streaming import RepetitionGuard, StopWhen, TextDeltaStreamer
from imagesense.schemas.tasks import FinishReason


@dataclass(frozen=True)
class GenerationRequest:
    messages: list[Message]
    images: list[Image.Image]  # already fitted to the pixel budget
    max_pixels: int
    min_pixels: int
    max_new_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_guard: bool = True


@dataclass(frozen=True)
class GenerationOutput:
    text: str
    prompt_tokens: int
    image_tokens: int
    completion_tokens: int
    prefill_ms: float
    decode_ms: float
    finish_reason: FinishReason
    token_ids: list[int] = field(default_factory=list, repr=False)


class Generator:
    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self.model = loaded.model
        self.processor = loaded.processor
        self.tokenizer = loaded.processor.tokenizer
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        self.image_token_id: int = self.model.config.image_token_id

    def prepare(self, request: GenerationRequest) -> Any:
        prompt = self.processor.apply_chat_template(request.messages, tokenize=False, add_generation_prompt=True)
        return self.processor(
            text=[prompt],
            images=request.images or None,
            images_kwargs={"size": {"longest_edge": request.max_pixels, "shortest_edge": request.min_pixels}},
            return_tensors="pt",
        )

    def generate(
        self,
        request: GenerationRequest,
        should_stop: Callable[[], bool],
        on_text: Callable[[str], None],
    ) -> GenerationOutput:
        started = time.perf_counter()
        inputs = self.prepare(request)
        prompt_length = int(inputs["input_ids"].shape[1])
        streamer = TextDeltaStreamer(self.tokenizer, on_text)
        stop = StopWhen(should_stop)
        guard = RepetitionGuard(prompt_length)
        criteria = StoppingCriteriaList([stop, guard] if request.repetition_guard else [stop])
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": request.temperature, "top_p": request.top_p}
            if request.temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        with torch.inference_mode():
            output = self.model.generate(
                **inputs,
                max_new_tokens=request.max_new_tokens,
                streamer=streamer,
                stopping_criteria=criteria,
                **sampling,
            )
        new_ids = [int(token) for token in output[0, prompt_length:].tolist()]
        finished = time.perf_counter()
        first = streamer.first_token_at or finished
        return GenerationOutput(
            text=self.tokenizer.decode(new_ids, skip_special_tokens=True),
            prompt_tokens=prompt_length,
            image_tokens=int((inputs["input_ids"] == self.image_token_id).sum()),
            completion_tokens=len(new_ids),
            prefill_ms=(first - started) * 1000,
            decode_ms=(finished - first) * 1000,
            finish_reason=self._finish_reason(new_ids, stop.triggered, guard.triggered),
            token_ids=new_ids,
        )

    def _finish_reason(self, new_ids: list[int], cancelled: bool, looping: bool) -> FinishReason:
        if cancelled:
            return "cancelled"
        if new_ids and new_ids[-1] in self.eos_ids:
            return "stop"
        if looping:
            return "repetition"
        return "length"

    def warm_up(self) -> None:
        """One tiny generation so the first real request doesn't pay one-time costs (allocations, caches)."""
        request = GenerationRequest(
            messages=[{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Hi"}]}],
            images=[Image.new("RGB", (64, 64), "white")],
            max_pixels=64 * 64,
            min_pixels=32 * 32,
            max_new_tokens=2,
        )
        self.generate(request, should_stop=lambda: False, on_text=lambda _text: None)
