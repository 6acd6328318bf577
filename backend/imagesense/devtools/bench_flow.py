"""The flow a user of the web app follows — describe an image, then ask about it — through HTTP on
the service, with the default settings: what the first question costs after the describe.

Two ways for the question: at auto resolution (it keeps the describe's encoding, which the prefix cache
holds) and pinned to ask's own budget (768²: a second, larger encode, as before the conversation kept
its resolution). Each on a fresh image, so neither borrows the other's cache.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

from PIL import Image

from imagesense.budgets import AUTO_PIXELS

Result = dict[str, Any]

QUESTION = "What is in the top left corner?"


def flow(spec: Result) -> Result:
    from fastapi.testclient import TestClient

    from imagesense.devtools.bench_scenarios import bench_image  # it registers this scenario
    from imagesense.main import create_app
    from imagesense.settings import Settings

    settings = Settings(
        model=spec["checkpoint"],
        quantization=spec["profile"],
        repetition_guard=False,
        static_dir=Path("/nonexistent"),
        fast_ocr=False,
        allowed_hosts=["testserver"],
    )
    tokens = {"max_new_tokens": spec["new_tokens"]}
    with TestClient(create_app(settings)) as client:
        wait_for_vlm(client)
        results: Result = {}
        for label, pinned in (("kept", {}), ("pinned", {"max_pixels": AUTO_PIXELS["ask"]})):
            image_id = _upload(client, bench_image().rotate(180 if pinned else 0))  # distinct bytes: no shared cache
            described = _timed(client, "/api/v1/describe", {"image_id": image_id, **tokens})
            asked = _timed(client, "/api/v1/ask", {"image_ids": image_id, "question": QUESTION, **tokens, **pinned})
            results[label] = {"describe": described, "ask": asked}
    return results


def wait_for_vlm(client: Any, timeout_s: float = 600) -> None:
    """Until the in-process service's model can take work (the benchmarks time nothing before)."""
    deadline = time.monotonic() + timeout_s
    while client.get("/api/v1/ready", params={"engine": "vlm"}).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(client.get("/api/v1/ready").text)
        time.sleep(0.2)


def _upload(client: Any, image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    image_id: str = client.post("/api/v1/images", files={"file": ("b.png", buffer.getvalue())}).json()["image_id"]
    return image_id


def _timed(client: Any, path: str, form: dict[str, Any]) -> dict[str, Any]:
    began = time.perf_counter()
    body = client.post(path, data=form).json()
    return {
        "wall_s": time.perf_counter() - began,
        "ttft_s": body["timings"]["prefill_ms"] / 1000,
        "visual_tokens": body["usage"]["image_tokens"],
        "prompt_tokens": body["usage"]["prompt_tokens"],
        "cached_tokens": body["usage"]["cached_tokens"],
    }
