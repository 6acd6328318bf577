"""One benchmark scenario per process: `python -m imagesense.devtools.bench_scenarios '<json spec>'`.

Each runs in a fresh process so its peak memory is its own and no scenario warms caches for the next.
The last line printed is a JSON object with the measurements.
"""

from __future__ import annotations

import functools
import io
import json
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw
from transformers import AutoModelForImageTextToText, LogitsProcessor

from imagesense.devtools.bench_flow import flow, wait_for_vlm
from imagesense.engine.cpu import cpu_cores
from imagesense.engine.loader import load_model, load_processor
from imagesense.engine.prefix_cache import PrefixCache
from imagesense.engine.protocol import ChatMessage, GenerationRequest, GenerationResult, Unattended
from imagesense.engine.quantize import QUANTIZED_SCHEMES, linear_error
from imagesense.engine.streaming import TextDeltaStreamer
from imagesense.engine.transformers_engine import TransformersEngine
from imagesense.images import fit_to_budget
from imagesense.prompts import build_messages
from imagesense.schemas.tasks import Turn

Result = dict[str, Any]


@functools.cache
def bench_image(width: int = 1280, height: int = 960) -> Image.Image:
    """A photo-like test image (content doesn't matter to random weights; size does). Rendered once:
    every timed request resizes the same image instead of drawing it again inside the timing."""
    rng = np.random.default_rng(0)
    sky = np.linspace([90, 140, 220], [220, 230, 240], height)[:, None, :].repeat(width, axis=1)
    pixels = np.clip(sky + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, height * 2 // 3, width, height), fill=(70, 120, 60))
    draw.ellipse((width // 3, height // 4, width // 2, height // 2), fill=(250, 210, 60))
    return image


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kilobytes on Linux


class FixedLengthEngine(TransformersEngine):
    """The service's engine, made to write exactly ``max_new_tokens`` tokens: a random model may stop at
    any token, and a benchmark compares equal work."""

    def _generate_options(self, request: GenerationRequest, processors: list[LogitsProcessor]) -> dict[str, Any]:
        return {**super()._generate_options(request, processors), "min_new_tokens": request.max_new_tokens}


QUIET = Unattended()


def _timed(output: GenerationResult, began: float, new_tokens: int) -> Result:
    """Times from ``began`` (before the image is resized): the first token, the rate after it, the end."""
    total = time.perf_counter() - began
    decode_rate = (output.completion_tokens - 1) / (output.decode_ms / 1000) if output.decode_ms else 0.0
    assert output.completion_tokens == new_tokens, (output.completion_tokens, new_tokens)
    return {
        "visual_tokens": output.image_tokens,
        "ttft_s": total - output.decode_ms / 1000,
        "decode_tps": decode_rate,
        "total_s": total,
    }


def naive(spec: Result) -> Result:
    """What a first attempt does: float32, the processor's default resolution, plain generate()."""
    processor = load_processor(spec["checkpoint"])
    model = AutoModelForImageTextToText.from_pretrained(spec["checkpoint"], dtype=torch.float32).eval()
    messages: Any = build_messages("describe", 1)  # transformers types a conversation more narrowly
    image = bench_image()
    streamer = TextDeltaStreamer(processor.tokenizer, lambda _text: None)
    began = time.perf_counter()
    prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    inputs = processor(text=[prompt], images=[image], return_tensors="pt")
    with torch.inference_mode():
        output = model.generate(
            **inputs, max_new_tokens=spec["new_tokens"], min_new_tokens=spec["new_tokens"], do_sample=False,
            streamer=streamer,
        )  # fmt: skip
    total = time.perf_counter() - began
    first, last = streamer.first_token_at or began, streamer.last_token_at or began
    new = output.shape[1] - inputs["input_ids"].shape[1]
    return {
        "visual_tokens": int((inputs["input_ids"] == model.config.image_token_id).sum()),
        "ttft_s": first - began,
        "decode_tps": (new - 1) / (last - first) if last > first else 0.0,
        "total_s": total,
    }


def _engine(spec: Result, cache_mb: int = 0, threads: Callable[[], int] | None = None) -> FixedLengthEngine:
    loaded = load_model(spec["checkpoint"], "auto", quantization=spec["profile"])
    engine = FixedLengthEngine(loaded, PrefixCache(cache_mb * 2**20), threads)
    engine.warm_up()
    bench_image()  # drawn now, outside any timing
    return engine


def _request(spec: Result, messages: list[ChatMessage] | None = None, image_id: str = "") -> GenerationRequest:
    budget = spec["max_pixels"]
    return GenerationRequest(
        messages=messages or build_messages("describe", 1),
        images=[fit_to_budget(bench_image(), budget, 4096)],
        max_pixels=budget,
        min_pixels=4096,
        max_new_tokens=spec["new_tokens"],
        repetition_guard=False,
        image_keys=(image_id,) if image_id else (),
    )


def engine(spec: Result) -> Result:
    """The service's engine: pixel budget, bfloat16 where the CPU has it, the quantization profile."""
    engine = _engine(spec)
    began = time.perf_counter()
    output = engine.generate(_request(spec), QUIET)
    return _timed(output, began, spec["new_tokens"])


def follow_up(spec: Result) -> Result:
    """Questions about an image already seen: the prefix cache serves the image and earlier turns.

    Two cases: a second question with the first exchange as history, and a new question about the same
    image. (With random weights the first answer is nonsense whose text does not tokenize back to the
    same ids, so only the prompt before it is reused; real answers are reused whole.)
    """
    engine = _engine(spec, cache_mb=512)
    asked = "What is in this picture?"
    first = engine.generate(_request(spec, build_messages("ask", 1, question=asked), "bench"), QUIET)
    history = [Turn(role="user", content=asked), Turn(role="assistant", content=first.text)]
    began = time.perf_counter()
    messages = build_messages("ask", 1, question="What colour is the sky?", history=history)
    with_history = engine.generate(_request(spec, messages, "bench"), QUIET)
    result = {**_timed(with_history, began, spec["new_tokens"]), "cached_tokens": with_history.cached_tokens}
    result["prompt_tokens"] = with_history.prompt_tokens
    began = time.perf_counter()
    messages = build_messages("ask", 1, question="Is there a sun in the picture?")
    again = engine.generate(_request(spec, messages, "bench"), QUIET)
    timed = _timed(again, began, spec["new_tokens"])
    result.update(new_question_ttft_s=timed["ttft_s"], new_question_cached=again.cached_tokens)
    result["new_question_prompt_tokens"] = again.prompt_tokens
    return result


def concurrent(spec: Result) -> Result:
    """Two requests at once (threads shared out per token) against the same two one after the other."""
    cores = cpu_cores()
    active = {"n": 0}
    lock = threading.Lock()
    engine = _engine(spec, threads=lambda: cores // max(1, active["n"]))

    def one(latencies: list[float]) -> None:
        with lock:
            active["n"] += 1
        began = time.perf_counter()
        engine.generate(_request(spec), QUIET)
        latencies.append(time.perf_counter() - began)
        with lock:
            active["n"] -= 1

    alone: list[float] = []
    began = time.perf_counter()
    for _ in range(2):
        one(alone)
    sequential_wall = time.perf_counter() - began
    together: list[float] = []
    began = time.perf_counter()
    workers = [threading.Thread(target=one, args=(together,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {
        "latency_alone_s": sum(alone) / 2,
        "latency_together_s": sum(together) / 2,
        "wall_sequential_s": sequential_wall,
        "wall_together_s": time.perf_counter() - began,
    }


def service_overhead(spec: Result) -> Result:
    """The same describe through HTTP and the WebSocket (pool, streaming) against the engine directly.

    Two views: interleaved end-to-end medians (what a client sees, noise included), and per request the
    client's wall time against the generation time the engine itself measured inside the worker.
    """
    from fastapi.testclient import TestClient

    from imagesense.main import create_app
    from imagesense.settings import Settings

    settings = Settings(
        model=spec["checkpoint"], quantization=spec["profile"], repetition_guard=False, prefix_cache_mb=0,
        static_dir=Path("/nonexistent"), fast_ocr=False, max_new_tokens_limit=spec["new_tokens"],
        allowed_hosts=["testserver"],  # the name TestClient's requests carry
    )  # fmt: skip
    buffer = io.BytesIO()
    bench_image().save(buffer, "PNG")
    options = {"max_new_tokens": spec["new_tokens"], "max_pixels": spec["max_pixels"]}
    direct, http, stream, accounted = [], [], [], []
    with TestClient(create_app(settings)) as client:
        wait_for_vlm(client)
        image_id = client.post("/api/v1/images", files={"file": ("b.png", buffer.getvalue())}).json()["image_id"]
        served = client.app.state.service.engines.vlm.get()  # type: ignore[attr-defined]
        for _ in range(spec.get("rounds", 3)):  # interleaved, so drifts of a shared machine hit all alike
            began = time.perf_counter()
            served.generate(_request(spec), QUIET)
            direct.append(time.perf_counter() - began)
            began = time.perf_counter()
            body = client.post("/api/v1/describe", data={"image_id": image_id, **options}).json()
            http.append(time.perf_counter() - began)
            engine_s = (body["timings"]["prefill_ms"] + body["timings"]["decode_ms"]) / 1000
            accounted.append(http[-1] / engine_s - 1)
            began = time.perf_counter()
            with client.websocket_connect("/api/v1/stream") as ws:
                ws.send_text(json.dumps({"task": "describe", "image_ids": [image_id], "options": options}))
                while json.loads(ws.receive_text())["type"] != "done":
                    pass
            stream.append(time.perf_counter() - began)
    median = statistics.median
    return {
        "direct_s": median(direct), "http_s": median(http), "stream_s": median(stream),
        "overhead": median(http) / median(direct) - 1, "stream_overhead": median(stream) / median(direct) - 1,
        "accounted_overhead": median(accounted),
    }  # fmt: skip


ERROR_LAYERS = [
    "model.language_model.layers.0.self_attn.q_proj", "model.language_model.layers.0.mlp.down_proj",
    "model.language_model.layers.13.mlp.gate_proj", "model.language_model.layers.27.self_attn.o_proj",
    "model.language_model.layers.27.mlp.down_proj", "lm_head", "model.visual.blocks.0.attn.qkv",
    "model.visual.blocks.23.mlp.linear_fc2",
]  # fmt: skip


def layer_errors(spec: Result) -> Result:
    """Each scheme's output error per layer against bfloat16, on the activations of a real prompt."""
    loaded = load_model(spec["checkpoint"], "bfloat16")
    model = loaded.model
    layers = {name: module for name, module in model.named_modules() if name in spec.get("layers", ERROR_LAYERS)}
    captured: dict[str, torch.Tensor] = {}

    def capture(name: str) -> Any:
        def hook(_module: torch.nn.Module, args: tuple[torch.Tensor, ...], _output: torch.Tensor) -> None:
            captured.setdefault(name, args[0].detach())  # returns None: the output stays as it is

        return hook

    hooks = [layer.register_forward_hook(capture(name)) for name, layer in layers.items()]
    engine = TransformersEngine(loaded)
    inputs = engine.prepare(_request(spec))
    with torch.inference_mode():
        model(**inputs, position_ids=engine.position_ids(inputs))
    for hook in hooks:
        hook.remove()
    errors: dict[str, dict[str, float]] = {}
    for name, layer in layers.items():
        rows = captured[name].reshape(-1, captured[name].shape[-1])[:256]  # a sample of the real rows
        errors[name] = {scheme: linear_error(layer, scheme, rows) for scheme in QUANTIZED_SCHEMES}
    return {"errors": errors}


SCENARIOS = {
    "naive": naive, "engine": engine, "follow_up": follow_up, "concurrent": concurrent, "service": service_overhead,
    "layer_errors": layer_errors, "flow": flow,
}  # fmt: skip


def main() -> None:
    spec = json.loads(sys.argv[1])
    torch.set_num_threads(cpu_cores())
    result = SCENARIOS[spec["kind"]](spec)
    print(json.dumps({**result, "peak_rss_gb": peak_rss_gb()}))


if __name__ == "__main__":
    main()
