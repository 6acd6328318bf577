"""One generation: chat template → processor → ``model.generate`` with streaming and early stops."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image
from transformers import DynamicCache, StoppingCriteriaList

from imagesense.engine.loader import LoadedModel
from imagesense.engine.prefix_cache import ImagesKey, PrefixCache
from imagesense.engine.prompts import Message
from imagesense.engine.streaming import FollowThreadShare, RepetitionGuard, StopWhen, TextDeltaStreamer
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
    image_keys: tuple[str, ...] = ()  # content ids of the images: what a reusable prefix is keyed by
    min_new_tokens: int = 0  # benchmarks: a fixed number of tokens, whatever the model says


@dataclass(frozen=True)
class GenerationOutput:
    text: str
    prompt_tokens: int
    image_tokens: int
    completion_tokens: int
    prefill_ms: float
    decode_ms: float
    finish_reason: FinishReason
    cached_tokens: int = 0  # prompt tokens whose KV cache was reused instead of computed
    token_ids: list[int] = field(default_factory=list, repr=False)


class Generator:
    def __init__(self, loaded: LoadedModel, prefix_cache: PrefixCache | None = None) -> None:
        self.loaded = loaded
        self.prefix_cache = prefix_cache or PrefixCache(0)
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

    def position_ids(self, inputs: Any) -> torch.Tensor:
        """Qwen3-VL's 3-D (M-RoPE) positions for the whole prompt, computed here rather than by generate():
        generate() would read them back from state the model keeps between calls, which a concurrent
        generation or a reused prefix would make wrong."""
        input_ids = inputs["input_ids"]
        text = torch.arange(input_ids.shape[1], dtype=torch.long)[None, None, :]
        if inputs.get("image_grid_thw") is None:
            return text.expand(4, input_ids.shape[0], -1)
        vision, _deltas = self.model.model.get_rope_index(
            input_ids,
            mm_token_type_ids=inputs["mm_token_type_ids"],
            image_grid_thw=inputs["image_grid_thw"],
            attention_mask=inputs.get("attention_mask"),
        )
        return torch.cat([text.expand(1, input_ids.shape[0], -1), vision], dim=0)

    def _start_cache(self, request: GenerationRequest, tokens: torch.Tensor) -> tuple[DynamicCache, int]:
        found = self.prefix_cache.lookup(self._key(request), tokens) if request.image_keys else None
        return found or (DynamicCache(config=self.model.config), 0)

    @staticmethod
    def _key(request: GenerationRequest) -> ImagesKey:
        return (request.image_keys, request.max_pixels, request.min_pixels)

    def generate(
        self,
        request: GenerationRequest,
        should_stop: Callable[[], bool],
        on_text: Callable[[str], None],
        threads: Callable[[], int] | None = None,
    ) -> GenerationOutput:
        """Generate on the calling thread. ``threads`` says how many cores this generation may use now;
        it is asked again before every token."""
        started = time.perf_counter()
        share = [FollowThreadShare(threads)] if threads is not None else []
        inputs = self.prepare(request)
        prompt_length = int(inputs["input_ids"].shape[1])
        cache, reused = self._start_cache(request, inputs["input_ids"][0])
        model_inputs = {**inputs, "position_ids": self.position_ids(inputs), "cache": cache}
        if reused:
            model_inputs.pop("pixel_values", None)  # the image tokens' keys and values are in the cache
        streamer = TextDeltaStreamer(self.tokenizer, on_text)
        stop = StopWhen(should_stop)
        guard = RepetitionGuard(prompt_length)
        criteria = StoppingCriteriaList([*share, stop, guard] if request.repetition_guard else [*share, stop])
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": request.temperature, "top_p": request.top_p}
            if request.temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        with torch.inference_mode():
            output = self.model.generate(
                **model_inputs,
                max_new_tokens=request.max_new_tokens,
                min_new_tokens=request.min_new_tokens or None,
                streamer=streamer,
                stopping_criteria=criteria,
                **sampling,
            )
        if request.image_keys:
            self.prefix_cache.store(self._key(request), output[0, : cache.get_seq_length()], cache)
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
            cached_tokens=reused,
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
