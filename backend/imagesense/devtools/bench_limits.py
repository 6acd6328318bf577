"""`imagesense bench-limits`: what the robustness limits cost and buy, measured in one run.

- Cancel inside prefill: a describe of a 1280×960 photo at 1200 visual tokens on the real 2B architecture
  (random weights), cancelled 2 s after it started, while the vision encoder is still running; the time
  from the cancel until /stats shows the slot free, beside the prefill it interrupted.
- Decoding hostile images: 8 concurrent uploads of a 64-megapixel RGBA PNG (a small file that decodes
  to 256 MB), through the service (at most two decodes at once, alpha pasted without RGBA copies); the
  peak RSS growth and every status, beside a naive decode of one such image (Pillow's alpha composite).

`--tiny` runs both on the tiny test checkpoint with smaller images, in seconds.
"""

from __future__ import annotations

import functools
import gc
import io
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from imagesense.devtools.bench_scenarios import bench_image
from imagesense.devtools.checkpoint import cached_checkpoint
from imagesense.main import create_app
from imagesense.settings import Settings

EQUAL_WORK_PIXELS = 1280 * 960  # the whole photo: 1200 visual tokens


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@contextmanager
def peak_rss(samples: list[float]) -> Iterator[None]:
    """Samples this process's RSS every 5 ms while the block runs."""
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            samples.append(rss_mb())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        done.set()
        sampler.join()


@contextmanager
def serving(**settings: Any) -> Iterator[TestClient]:
    # TestClient's requests name the host "testserver".
    options: dict[str, Any] = {
        "static_dir": Path("/nonexistent"),
        "log_level": "warning",
        "allowed_hosts": ["testserver"],
    }
    options |= settings
    with TestClient(create_app(Settings(**options))) as client:
        while client.get("/api/v1/ready").json()["vlm"]["status"] == "loading":
            time.sleep(0.2)
        yield client


def cancel_in_prefill(checkpoint: Path, after_s: float) -> dict[str, Any]:
    with serving(model=str(checkpoint), fast_ocr=False, repetition_guard=False, prefix_cache_mb=0) as client:
        buffer = io.BytesIO()
        bench_image().save(buffer, "PNG")
        image_id = client.post("/api/v1/images", files={"file": ("p.png", buffer.getvalue())}).json()["image_id"]
        options = {"max_new_tokens": 64, "max_pixels": EQUAL_WORK_PIXELS}
        describe = json.dumps({"task": "describe", "image_ids": [image_id], "options": options})
        with client.websocket_connect("/api/v1/stream") as ws:  # an uncancelled run first: the prefill time
            ws.send_text(describe)
            while (event := json.loads(ws.receive_text()))["type"] != "done":
                pass
        prefill_s = event["result"]["timings"]["prefill_ms"] / 1000
        with client.websocket_connect("/api/v1/stream") as ws:
            ws.send_text(describe)
            while json.loads(ws.receive_text())["type"] != "started":
                pass
            time.sleep(after_s)
            ws.send_text(json.dumps({"type": "cancel"}))
            cancelled = time.perf_counter()
            while client.get("/api/v1/stats").json()["active"]:
                time.sleep(0.01)
            freed_s = time.perf_counter() - cancelled
            last = json.loads(ws.receive_text())["type"]
    return {"prefill_s": prefill_s, "cancel_after_s": after_s, "freed_s": freed_s, "event": last}


@functools.cache
def hostile_png(side: int, shade: int = 0) -> bytes:
    """A side×side RGBA PNG of one colour: tiny as a file, side²×4 bytes once decoded."""
    buffer = io.BytesIO()
    Image.new("RGBA", (side, side), (20 + shade, 120, 200, 128)).save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def naive_decode(data: bytes) -> Image.Image:
    """What a first attempt does: decode, then composite on white through a full RGBA background."""
    image = Image.open(io.BytesIO(data))
    image.load()
    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")


def decode_memory(side: int, uploads: int) -> dict[str, Any]:
    data = hostile_png(side)
    gc.collect()
    samples: list[float] = []
    base = rss_mb()
    with peak_rss(samples):
        naive_decode(data)
    naive_growth = max(samples) - base
    gc.collect()
    with serving(load_model=False, fast_ocr=False, max_image_pixels=side * side) as client:

        def upload(index: int) -> int:  # each a different image: none is found already stored
            files = {"file": ("big.png", hostile_png(side, index), "image/png")}
            return client.post("/api/v1/images", files=files).status_code

        for index in range(uploads):
            hostile_png(side, index)  # made before the measurement

        gc.collect()
        base, samples = rss_mb(), []
        with peak_rss(samples), ThreadPoolExecutor(uploads) as pool:
            statuses = list(pool.map(upload, range(uploads)))
    return {
        "file_kb": len(data) / 1024, "megapixels": side * side / 1e6, "uploads": uploads, "statuses": statuses,
        "growth_mb": max(samples) - base, "naive_one_mb": naive_growth,
    }  # fmt: skip


def main(tiny: bool, checkpoint: str | None) -> None:
    path = Path(checkpoint) if checkpoint else cached_checkpoint(Path(".cache"), "tiny" if tiny else "2b")
    side, after_s = (2000, 0.05) if tiny else (8000, 2.0)
    print(f"checkpoint {path}\n")
    cancel = cancel_in_prefill(path, after_s)
    print(
        f"cancel inside prefill (1200 visual tokens): prefill alone {cancel['prefill_s']:.2f} s; cancelled "
        f"{cancel['cancel_after_s']:.1f} s after the start, the slot was free {cancel['freed_s']:.2f} s later "
        f"({cancel['freed_s'] / cancel['prefill_s'] * 100:.1f} % of the prefill), and the client got "
        f"'{cancel['event']}'"
    )
    decode = decode_memory(side, 8)
    statuses = ", ".join(f"{status}×{decode['statuses'].count(status)}" for status in sorted(set(decode["statuses"])))
    print(
        f"decode: {decode['uploads']} concurrent uploads of a {decode['megapixels']:.0f}-megapixel RGBA PNG "
        f"({decode['file_kb']:.0f} KB each): peak RSS growth {decode['growth_mb']:.0f} MB, answers {statuses}; "
        f"one naive decode (alpha composite) alone grows RSS by {decode['naive_one_mb']:.0f} MB"
    )
