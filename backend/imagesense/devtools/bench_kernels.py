"""The int8-weight layer's kernels on the 2B language model's shapes, one token (decode) and one prefill.

``python -m imagesense.devtools.bench_kernels`` prints, for each matrix shape of a decoder layer and the
lm_head: PyTorch's decode kernel (bfloat16 activations) against the engine's own, in ms and GB/s of
weights read, and the per-token total; then what widening an int8 matrix for a prefill GEMM costs into a
fresh tensor and into a reused buffer. Many distinct matrices are cycled so they come from memory, not
from the cache, as in a real token.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from imagesense.engine.cpu import cpu_cores
from imagesense.engine.native import load_kernels

# (out, in, matrices of this shape per token) at Qwen3-VL-2B: q/o, k/v, gate/up, down, lm_head.
SHAPES = [(2048, 2048, 56), (1024, 2048, 56), (6144, 2048, 56), (2048, 6144, 28), (151936, 2048, 1)]
_SET_BYTES = 300_000_000  # matrices cycled per shape: well beyond any CPU cache


def best_seconds(run: Callable[[], object], repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best


def decode_shape(out_features: int, in_features: int) -> tuple[float, float]:
    """Seconds per matrix and row: PyTorch's kernel, the engine's."""
    ops = torch.ops.imagesense
    count = max(2, _SET_BYTES // (out_features * in_features))
    weights = [torch.randint(-127, 128, (out_features, in_features), dtype=torch.int8) for _ in range(count)]
    scale = torch.rand(out_features) + 0.01
    packed = [ops.pack_int8(weight) for weight in weights]
    row = torch.randn(1, in_features)
    bf16_row, bf16_scale = row.bfloat16(), scale.bfloat16()
    pytorch = best_seconds(lambda: [torch.ops.aten._weight_int8pack_mm(bf16_row, w, bf16_scale) for w in weights])
    engine = best_seconds(lambda: [ops.int8_linear(row, p, scale) for p in packed])
    return pytorch / count, engine / count


def decode_kernels() -> None:
    totals = {"pytorch": 0.0, "engine": 0.0}
    print(f"decode, one row, {torch.get_num_threads()} threads:")
    for out_features, in_features, per_token in SHAPES:
        pytorch, engine = decode_shape(out_features, in_features)
        totals["pytorch"] += pytorch * per_token
        totals["engine"] += engine * per_token
        gigabytes = out_features * in_features / 1e9
        print(
            f"  {out_features:>6}×{in_features:<5} PyTorch {pytorch * 1e3:7.3f} ms ({gigabytes / pytorch:5.1f} GB/s)"
            f"  engine {engine * 1e3:7.3f} ms ({gigabytes / engine:5.1f} GB/s)  {pytorch / engine:.2f}×"
        )
    print(
        f"  per token (28 layers + lm_head): PyTorch {totals['pytorch'] * 1e3:.1f} ms, engine "
        f"{totals['engine'] * 1e3:.1f} ms ({totals['pytorch'] / totals['engine']:.2f}×)"
    )


def prefill_widening() -> None:
    out_features, in_features, count = 6144, 2048, 12
    weights = [torch.randint(-127, 128, (out_features, in_features), dtype=torch.int8) for _ in range(count)]
    reused = torch.empty(out_features, in_features)
    fresh = best_seconds(lambda: [weight.float() for weight in weights]) / count
    into = best_seconds(lambda: [reused.copy_(weight) for weight in weights]) / count
    print(f"prefill: widening a {out_features}×{in_features} int8 matrix to float32")
    print(f"  into a fresh tensor {fresh * 1e3:.1f} ms, into a reused buffer {into * 1e3:.1f} ms ({fresh / into:.1f}×)")


def main() -> None:
    torch.set_num_threads(cpu_cores())
    reason = load_kernels()
    if reason:
        print(f"the engine's kernels are not available here: {reason}")
    else:
        decode_kernels()
    prefill_widening()


if __name__ == "__main__":
    main()
