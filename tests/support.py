"""Helpers shared by the tests: image bytes in every format, and a ready test client."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image
from starlette.testclient import WebSocketTestSession

from imagesense.main import create_app
from imagesense.settings import Settings

TERMINAL_EVENTS = {"done", "error", "cancelled"}


def image_bytes(
    size: tuple[int, int] = (320, 240), fmt: str = "PNG", mode: str = "RGB", color: Any = "white", **save: Any
) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, fmt, **save)
    return buffer.getvalue()


def wait_ready(client: TestClient, timeout_s: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = client.get("/api/v1/ready").json()
        if all(body[engine]["status"] != "loading" for engine in ("vlm", "fast_ocr")):
            return body
        time.sleep(0.05)
    raise TimeoutError("the model did not load")


# float32 and no quantization unless a test asks: greedy decoding of a random tiny model has nearly flat
# logits, so only exact arithmetic keeps "same input, same text" checks meaningful. The quantization
# profiles have tests of their own.
EXACT = {"dtype": "float32", "quantization": "none"}


@contextmanager
def service(checkpoint: Path, *, wait: bool = True, **overrides: Any) -> Iterator[TestClient]:
    """A service on ``checkpoint``; ``wait``: until every engine has loaded (or failed)."""
    options = {
        "warmup": False,
        "static_dir": Path("/nonexistent"),
        "allowed_hosts": ["testserver"],
        **EXACT,
        **overrides,
    }
    settings = Settings(model=str(checkpoint), **options)
    with TestClient(create_app(settings)) as client:
        if wait:
            wait_ready(client)
        yield client


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def upload(client: TestClient, data: bytes | None = None, name: str = "image.png") -> str:
    response = client.post("/api/v1/images", files={"file": (name, data or image_bytes(), "image/png")})
    assert response.status_code == 201, response.text
    image_id: str = response.json()["image_id"]
    return image_id


def receive_until(ws: WebSocketTestSession, types: set[str]) -> list[dict[str, Any]]:
    """Events up to and including the first whose type is in ``types``."""
    events: list[dict[str, Any]] = []
    while True:
        event: dict[str, Any] = json.loads(ws.receive_text())
        events.append(event)
        if event["type"] in types:
            return events


def run_request(image_ids: list[str], task: str = "describe", **options: Any) -> str:
    message: dict[str, Any] = {"task": task, "image_ids": image_ids, "options": options}
    if task == "ask":
        message["question"] = "What is in the image?"
    return json.dumps(message)


def stats(client: TestClient) -> dict[str, Any]:
    """The pools' counts (/api/v1/stats)."""
    body: dict[str, Any] = client.get("/api/v1/stats").json()
    return body
