"""Where the time to the first token goes: one prefill under ``torch.profiler``, against the CPU's GEMM rate.

``python -m imagesense.devtools.profile_prefill [max_pixels] [profile] [checkpoint]`` (defaults: the
bench's describe budget, 200704 pixels = 192 visual tokens; int8-weight; the 2B random-weight
checkpoint in ``.cache``) loads the engine as the bench does, encodes the bench's photo at that budget
and prints: the vision encoder and the whole prefill in seconds, the ops that took the time, the
float32 FLOP rate of the matrix products and of the attention (counted from the shapes the profiler
recorded), and, in the same run, the rate of a plain float32 GEMM on this CPU — so "bound by float32
arithmetic" is a measurement, not a guess. ``max_pixels=1228800`` is the bench's 1200-visual-token row.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from imagesense.devtools.bench_scenarios import _engine, _request
from imagesense.devtools.checkpoint import cached_checkpoint
from imagesense.engine.cpu import cpu_cores

DESCRIBE_PIXELS = 200704
ATTENTION = "aten::_scaled_dot_product_flash_attention_for_cpu"
MATRIX_ARGUMENT = {"aten::mm": 0, "aten::addmm": 1}  # where a product's two matrices start (addmm: after the bias)


def op_flops(name: str, shapes: list[list[int]]) -> float:
    """Multiply-adds × 2 of a matrix product or of full (unmasked) attention, from its input shapes."""
    first = MATRIX_ARGUMENT.get(name)
    if first is not None and len(shapes) >= first + 2 and len(shapes[first]) == len(shapes[first + 1]) == 2:
        (m, k), (_, n) = shapes[first], shapes[first + 1]
        return 2.0 * m * k * n
    if name == ATTENTION and len(shapes) >= 2 and len(shapes[0]) == 4 and len(shapes[1]) == 4:
        (batch, heads, queries, dim), keys = shapes[0], shapes[1][2]
        return 4.0 * batch * heads * queries * keys * dim  # a causal mask would skip up to half of it
    return 0.0


def gemm_rate() -> float:
    """GFLOP/s of one float32 GEMM the size of a vision MLP's (the best of three)."""
    rows, weight = torch.randn(4800, 1024), torch.randn(4096, 1024)
    best = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        torch.nn.functional.linear(rows, weight)
        best = min(best, time.perf_counter() - began)
    return 2.0 * 4800 * 1024 * 4096 / best / 1e9


def main() -> None:
    torch.set_num_threads(cpu_cores())
    pixels = int(sys.argv[1]) if len(sys.argv) > 1 else DESCRIBE_PIXELS
    profile = sys.argv[2] if len(sys.argv) > 2 else "int8-weight"
    checkpoint = sys.argv[3] if len(sys.argv) > 3 else str(cached_checkpoint(Path(".cache"), "2b"))
    spec = {"checkpoint": checkpoint, "profile": profile, "max_pixels": pixels, "new_tokens": 1}
    engine = _engine(spec)
    inputs = engine.prepare(_request(spec))
    model = engine.model
    with torch.inference_mode():
        began = time.perf_counter()
        model.model.get_image_features(inputs["pixel_values"], inputs["image_grid_thw"])
        vision_s = time.perf_counter() - began
        with torch.profiler.profile(record_shapes=True) as profiler:
            began = time.perf_counter()
            model(**inputs, position_ids=engine.position_ids(inputs), logits_to_keep=1)
            prefill_s = time.perf_counter() - began
    events = profiler.key_averages(group_by_input_shape=True)
    visual = int((inputs["input_ids"] == model.config.image_token_id).sum())
    print(f"prefill, {profile}, {inputs['input_ids'].shape[1]} tokens ({visual} visual), {cpu_cores()} threads:")
    print(f"  vision encoder alone {vision_s:.2f} s; whole prefill under the profiler {prefill_s:.2f} s")
    totals: dict[str, list[float]] = {}
    for event in events:
        seconds = event.self_cpu_time_total / 1e6
        entry = totals.setdefault(event.key, [0.0, 0.0])
        entry[0] += seconds
        entry[1] += op_flops(event.key, event.input_shapes) * event.count
    whole = sum(seconds for seconds, _ in totals.values())
    print("  ops by their own time:")
    for name, (seconds, flops) in sorted(totals.items(), key=lambda item: -item[1][0])[:10]:
        rate = f"  {flops / seconds / 1e9:5.0f} GFLOP/s" if flops and seconds else ""
        print(f"    {name[:52]:52} {seconds:7.2f} s {100 * seconds / whole:5.1f} %{rate}")
    print(f"  a plain float32 GEMM (4800×1024 by 1024×4096) on this CPU now: {gemm_rate():.0f} GFLOP/s")


if __name__ == "__main__":
    main()
