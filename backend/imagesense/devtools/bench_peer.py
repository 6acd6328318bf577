"""What `imagesense bench` measures beside our own rows: the OpenVINO GenAI peer on the same workload
(run with the Python of OpenVINO's own virtualenv — never a dependency of ImageSense), the machine's
memory bandwidth, and how many bytes of weights a decoded token reads, so decode speed can be printed
as a share of what the memory allows."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from imagesense.devtools.bench_scenarios import bench_image
from imagesense.images import fitted_size

PEER_SCRIPT = Path(__file__).with_name("openvino_peer.py")
# Bytes a decoded token reads per weight of the language model's Linears and lm_head, by profile
# (int4 adds a bfloat16 scale and zero point per group of 128).
BYTES_PER_WEIGHT = {"int8-weight": 1.0, "int8-dynamic": 1.0, "int4-weight": 0.5 + 4 / 128}


def memory_bandwidth_gbs(gigabytes: float = 1.0, repeats: int = 5) -> float:
    """Read bandwidth with the threads torch uses: the best of a few sums over a large buffer."""
    buffer = torch.ones(int(gigabytes * 2**30) // 4, dtype=torch.float32)
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        buffer.sum()
        best = min(best, time.perf_counter() - began)
    return buffer.numel() * 4 / best / 1e9


def decode_weight_bytes(checkpoint: Path, profile: str, dtype_bytes: int) -> float:
    """Bytes of weights one decoded token reads: every Linear of the language model, and lm_head (the
    embedding matrix when tied: a token's embedding row is a gather, the head reads it all)."""
    linear, head = 0, 0
    for path in checkpoint.glob("*.safetensors"):
        with safe_open(str(path), "pt") as tensors:
            for name in tensors.keys():  # noqa: SIM118 - safe_open is not a mapping
                shape = tensors.get_slice(name).get_shape()
                if name.startswith("model.language_model.layers.") and name.endswith("proj.weight"):
                    linear += shape[0] * shape[1]
                elif name in ("lm_head.weight", "model.language_model.embed_tokens.weight"):
                    head = max(head, shape[0] * shape[1])
    return (linear + head) * BYTES_PER_WEIGHT.get(profile, dtype_bytes)


def openvino_row(python: str, export: Path, max_pixels: int, new_tokens: int, threads: int) -> dict[str, Any]:
    """The peer on our image at the size our engine fits it to (the same visual tokens)."""
    image = bench_image()
    width, height = fitted_size(image.width, image.height, max_pixels, 4096)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "image.png"
        image.resize((width, height)).save(path)
        command = [python, str(PEER_SCRIPT), "--model", str(export), "--image", str(path)]
        command += ["--new-tokens", str(new_tokens), "--threads", str(threads), "--repeats", "1"]  # after a warm-up
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the OpenVINO peer failed on {export}:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result | {"visual_tokens": (width // 32) * (height // 32)}
