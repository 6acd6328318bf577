"""The decode step on the 2B architecture: one C++ call a layer against the same layer op by op.

``python -m imagesense.devtools.bench_decode_step [checkpoint]`` (default: the 2B random-weight checkpoint
in ``.cache``, built on first use) loads it with int8-weight,
fills the cache with a 220-token prompt (the bench's describe: 192 visual tokens and the text), then
times decode steps through the text model, alternating the two paths round by round (this machine is
shared and noisy: compare within a round), and prints ms a token for each and their ratio. Where the
engine's kernels aren't in use (no compiler, a CPU with native bfloat16) both rows take the op-by-op path,
and it says so.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

from imagesense.devtools.checkpoint import cached_checkpoint
from imagesense.engine import lean_decode
from imagesense.engine.cpu import cpu_cores
from imagesense.engine.kv_cache import growing_cache
from imagesense.engine.loader import load_model

PROMPT_TOKENS, STEPS, ROUNDS = 220, 20, 4


def ms_per_token(model: Any) -> float:
    """Prefill a random prompt, then time ``STEPS`` greedy steps (after 3 untimed ones)."""
    prompt = torch.randint(1000, 20000, (1, PROMPT_TOKENS), generator=torch.Generator().manual_seed(0))
    cache = growing_cache(model.config)
    positions = torch.arange(PROMPT_TOKENS)[None, None].expand(4, 1, -1)
    with torch.inference_mode():
        token = model(input_ids=prompt, cache=cache, position_ids=positions).logits[:, -1:].argmax(-1)
        for step in range(3 + STEPS):
            if step == 3:
                began = time.perf_counter()
            position = torch.full((4, 1, 1), PROMPT_TOKENS + step)
            token = model(input_ids=token, cache=cache, position_ids=position).logits[:, -1:].argmax(-1)
    return (time.perf_counter() - began) / STEPS * 1000


def main() -> None:
    torch.set_num_threads(cpu_cores())
    source = sys.argv[1] if len(sys.argv) > 1 else str(cached_checkpoint(Path(".cache"), "2b"))
    model = load_model(source, quantization="int8-weight").model
    text_model = model.model.language_model
    lean_decode.install(text_model)
    fused_step = lean_decode._fused_layer_step
    if all(lean_decode._fused_weights(layer) is None for layer in text_model.layers):
        print("the one-call layer doesn't serve this model here (no engine kernels): both rows are op by op")
    rows: dict[str, list[float]] = {"one call a layer": [], "op by op": []}
    for _ in range(ROUNDS):
        for name, values in rows.items():
            lean_decode._fused_layer_step = fused_step if name == "one call a layer" else lambda *_: None
            values.append(ms_per_token(model))
    lean_decode._fused_layer_step = fused_step
    print(f"decode step, 2B int8-weight, {PROMPT_TOKENS} cached tokens, {torch.get_num_threads()} threads:")
    for name, values in rows.items():
        rounds = ", ".join(f"{value:.0f}" for value in values)
        print(f"  {name:17} {statistics.median(values):6.1f} ms a token (rounds: {rounds})")
    ratios = [slow / fast for fast, slow in zip(rows["one call a layer"], rows["op by op"], strict=True)]
    print(f"  op by op ÷ one call, per round: {', '.join(f'{r:.2f}×' for r in ratios)}")


if __name__ == "__main__":
    main()
