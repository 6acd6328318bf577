"""The local engine: Qwen3-VL through Hugging Face transformers, on the calling worker thread.

One generation: chat template → processor → ``model.generate`` with streaming, early stops, the core
share of the moment, and the KV cache of a prompt prefix already computed (see prefix_cache.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import torch
from PIL import Image
from transformers import DynamicCache, LogitsProcessor, LogitsProcessorList, StoppingCriteriaList

from imagesense.engine import lean_decode
from imagesense.engine.constrained import JsonConstraints, JsonLogits
from imagesense.engine.cpu import cpu_cores
from imagesense.engine.errors import InvalidGenerationRequest
from imagesense.engine.int8_weight import Int8WeightLinear
from imagesense.engine.kv_cache import growing_cache
from imagesense.engine.loader import LoadedModel, load_model
from imagesense.engine.native import NativeKernels
from imagesense.engine.prefix_cache import ImagesKey, PrefixCache
from imagesense.engine.protocol import (
    Capabilities,
    EngineInfo,
    FinishReason,
    GenerationControl,
    GenerationRequest,
    GenerationResult,
    Unattended,
)
from imagesense.engine.quantize import Scheme
from imagesense.engine.sampling import SeededSampler
from imagesense.engine.stops import StopSequences, cut_at_stop
from imagesense.engine.streaming import (
    FollowThreadShare,
    GenerationInterrupted,
    LayerStops,
    RepetitionGuard,
    StopWhen,
    TextDeltaStreamer,
)


def _decode_kernel(model: torch.nn.Module) -> str:
    """The matrix kernel a decode step's projections run on (the lm_head's stands for all of them)."""
    head = getattr(model, "lm_head", None)
    return "the engine's int8 kernel" if isinstance(head, Int8WeightLinear) and head.native else "PyTorch's kernels"


log = logging.getLogger(__name__)


# Below this temperature, sampling is greedy decoding (as in vLLM): dividing the logits by a temperature
# near zero overflows them to inf, and sampling from the resulting NaNs raises.
GREEDY_BELOW = 1e-5


class TransformersEngine:
    """Implements ``VisionLanguageEngine`` on a model loaded by ``loader.load_model``.

    ``threads`` says how many cores a generation may use now; it is asked again before every token, so
    one generation alone uses every core and two running at once share them.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        prefix_cache: PrefixCache | None = None,
        threads: Callable[[], int] | None = None,
    ) -> None:
        self.loaded = loaded
        self.prefix_cache = prefix_cache or PrefixCache(0)
        self.model = loaded.model
        self.processor = loaded.processor
        self.tokenizer = loaded.processor.tokenizer
        self._threads = threads
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
        self.image_token_id: int = self.model.config.image_token_id
        inner = self.model.model
        self._stops = LayerStops([*inner.visual.blocks, *inner.language_model.layers])
        step = lean_decode.install(inner.language_model)
        dtype = str(loaded.dtype).removeprefix("torch.")
        precision = dtype if loaded.quantization == "none" else f"{dtype}, {loaded.quantization}"
        capabilities = Capabilities(prefix_reuse=self.prefix_cache.enabled, json_schema=True)
        self._info = EngineInfo(loaded.name, precision, capabilities, decode=f"{step}, {_decode_kernel(self.model)}")
        self._json: JsonConstraints | None = None
        self._json_lock = threading.Lock()

    @property
    def info(self) -> EngineInfo:
        return self._info

    def unavailable_reason(self) -> str | None:
        return None  # loaded in this process: it can always take work

    def prepare(self, request: GenerationRequest) -> Any:
        messages: Any = request.messages  # transformers types a conversation more narrowly than it accepts
        prompt = self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
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
        return found or (growing_cache(self.model.config), 0)

    @staticmethod
    def _key(request: GenerationRequest) -> ImagesKey:
        return (request.image_keys, request.max_pixels, request.min_pixels)

    def json_constraints(self) -> JsonConstraints:
        """Built on first use: converting the tokenizer for llguidance takes about a second."""
        with self._json_lock:
            if self._json is None:
                self._json = JsonConstraints(self.tokenizer, self.model.config.text_config.vocab_size, self._end_ids())
            return self._json

    def _end_ids(self) -> list[int]:
        """The end-of-turn token first: it is what the chat template writes after an answer."""
        end_of_turn = self.tokenizer.eos_token_id
        return [end_of_turn, *sorted(self.eos_ids - {end_of_turn})]

    def constraint(self, request: GenerationRequest) -> JsonLogits | None:
        if request.json_schema is None:
            return None
        return self.json_constraints().processor(request.json_schema, request.max_new_tokens)

    def _generate_options(self, request: GenerationRequest, processors: list[LogitsProcessor]) -> dict[str, Any]:
        """Options for ``model.generate`` beyond the prompt. ``generate`` itself always runs greedy: a
        sampled request draws its token in the last processor, from a generator of its own (sampling.py)."""
        if request.temperature > GREEDY_BELOW:
            processors = [*processors, SeededSampler(request.temperature, request.top_p, request.seed)]
        return {
            "do_sample": False, "temperature": None, "top_p": None, "top_k": None,
            "logits_processor": LogitsProcessorList(processors),
        }  # fmt: skip

    def generate(self, request: GenerationRequest, control: GenerationControl) -> GenerationResult:
        started = time.perf_counter()
        inputs = self.prepare(request)
        prompt_length = int(inputs["input_ids"].shape[1])
        image_tokens = int((inputs["input_ids"] == self.image_token_id).sum())
        self._check_prompt_length(request, prompt_length, image_tokens)
        cache, reused = self._start_cache(request, inputs["input_ids"][0])
        model_inputs = {**inputs, "position_ids": self.position_ids(inputs), "cache": cache}
        if reused:
            model_inputs.pop("pixel_values", None)  # the image tokens' keys and values are in the cache
        constraint = self.constraint(request)
        stops = StopSequences(control, () if constraint else request.stop)  # a stop would cut the JSON short
        streamer = TextDeltaStreamer(self.tokenizer, stops.emit)
        stop = StopWhen(stops.should_stop)
        guard = RepetitionGuard(prompt_length)
        share = [FollowThreadShare(self._threads)] if self._threads is not None else []
        # A constrained answer ends when its JSON is complete; a repetition stop would leave it open.
        guarded = request.repetition_guard and constraint is None
        criteria = StoppingCriteriaList([*share, stop, guard] if guarded else [*share, stop])
        interrupted = False
        try:
            with torch.inference_mode(), self._stops.watching(stops.should_stop):
                output = self.model.generate(
                    **model_inputs,
                    max_new_tokens=request.max_new_tokens,
                    streamer=streamer,
                    stopping_criteria=criteria,
                    **self._generate_options(request, [constraint] if constraint else []),
                )
        except GenerationInterrupted:  # stopped inside a forward pass: what was generated so far stands
            interrupted = True
            new_ids = streamer.ids
        else:
            if request.image_keys:
                self.prefix_cache.store(self._key(request), output[0, : cache.get_seq_length()], cache)
            new_ids = [int(token) for token in output[0, prompt_length:].tolist()]
        stops.flush()
        finished = time.perf_counter()
        first = streamer.first_token_at or finished
        text, _ = cut_at_stop(self.tokenizer.decode(new_ids, skip_special_tokens=True), stops.sequences)
        cancelled = (interrupted or stop.triggered) and not stops.found
        return GenerationResult(
            text=text,
            finish_reason="stop" if stops.found else self._finish_reason(new_ids, cancelled, guard.triggered),
            prompt_tokens=prompt_length,
            image_tokens=image_tokens,
            completion_tokens=len(new_ids),
            prefill_ms=(first - started) * 1000,
            decode_ms=(finished - first) * 1000,
            cached_tokens=reused,
        )

    @staticmethod
    def _check_prompt_length(request: GenerationRequest, prompt_tokens: int, image_tokens: int) -> None:
        limit = request.max_prompt_tokens
        if limit is not None and prompt_tokens > limit:
            raise InvalidGenerationRequest(
                f"the prompt is {prompt_tokens} tokens ({image_tokens} for the images, "
                f"{prompt_tokens - image_tokens} of text); the limit is {limit} tokens"
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
        self.generate(request, Unattended())


def open_transformers_engine(
    source: str,
    *,
    dtype: str = "auto",
    revision: str | None = None,
    quantization: Scheme = "none",
    quantize_vision: bool = False,
    native_kernels: NativeKernels = "auto",
    prefix_cache_bytes: int = 0,
    threads: Callable[[], int] | None = None,
    warm_up: bool = True,
) -> TransformersEngine:
    """Load the model (every core for loading and quantizing) and return a ready engine."""
    torch.set_num_threads(cpu_cores())
    loaded = load_model(source, dtype, revision, quantization, quantize_vision, native_kernels)
    engine = TransformersEngine(loaded, PrefixCache(prefix_cache_bytes), threads)
    log.info("%s loaded (%s); decode: %s", source, engine.info.precision, engine.info.decode)
    if warm_up:
        engine.warm_up()
    return engine
