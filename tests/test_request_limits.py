"""A request over the image limit is refused the same way on every surface — typed HTTP, the WebSocket
stream and /v1 — before a single image is decoded, fetched or stored, or a PDF inspected or rendered."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imagesense.devtools.sample_pdf import MIXED, build_pdf
from imagesense.documents.pdf import Pdfium
from imagesense.images import decode_image
from imagesense.store import content_id
from support import image_bytes, receive_until, service, upload

LIMIT = 4
COLORS = ["red", "green", "blue", "gold", "navy", "teal"]
PNGS = [image_bytes((64, 48), color=color) for color in COLORS]
SAYS = f"{LIMIT + 1} images given; the limit is {LIMIT} per request"


@pytest.fixture(scope="module")
def limited(tiny_checkpoint: Path) -> Iterator[TestClient]:
    """No model needed: every refusal here comes before the queue."""
    with service(tiny_checkpoint, load_model=False, max_images_per_request=LIMIT) as client:
        yield client


@pytest.fixture
def work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every image decode and PDF inspect or render, by name."""
    done: list[str] = []

    def counting(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            done.append(name)
            return function(*args, **kwargs)

        return counted

    monkeypatch.setattr("imagesense.service.decode_image", counting("decode", decode_image))
    for method in ("inspect", "render", "text"):
        monkeypatch.setattr(Pdfium, method, counting(method, getattr(Pdfium, method)))
    return done


def data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode()


def over_http(client: TestClient, pngs: list[bytes]) -> dict[str, Any]:
    files = [("files", (f"{n}.png", data, "image/png")) for n, data in enumerate(pngs)]
    response = client.post("/api/v1/ask", data={"question": "Which is red?"}, files=files)
    assert response.status_code == 422, response.text
    error: dict[str, Any] = response.json()["error"]
    return {"code": error["code"], "message": error["message"]}


def over_stream(client: TestClient, pngs: list[bytes]) -> dict[str, Any]:
    ids = [content_id(data) for data in pngs]
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps({"task": "ask", "question": "Which is red?", "image_ids": ids}))
        [event] = receive_until(ws, {"error", "done", "cancelled"})
    assert event["type"] == "error", event
    return {"code": event["code"], "message": event["message"]}


def over_v1(client: TestClient, urls: list[str]) -> dict[str, Any]:
    parts = [{"type": "image_url", "image_url": {"url": url}} for url in urls]
    chat = {"model": "imagesense", "messages": [{"role": "user", "content": [*parts, {"type": "text", "text": "?"}]}]}
    response = client.post("/v1/chat/completions", json=chat)
    assert response.status_code == 400, response.text  # OpenAI answers an invalid parameter with 400
    error: dict[str, Any] = response.json()["error"]
    assert error["param"] == "messages"
    return {"code": error["code"], "message": error["message"]}


SURFACES: dict[str, Callable[[TestClient, list[bytes]], dict[str, Any]]] = {
    "http": over_http,
    "stream": over_stream,
    "v1": lambda client, pngs: over_v1(client, [data_url(data) for data in pngs]),
}


@pytest.mark.parametrize("surface", SURFACES)
def test_one_image_too_many_gets_the_same_error_everywhere_with_nothing_decoded(
    limited: TestClient, work: list[str], surface: str
) -> None:
    pngs = [image_bytes((64 + len(surface), 48), color=color) for color in COLORS[: LIMIT + 1]]  # its own
    if surface == "stream":  # the stream names uploaded images
        for data in pngs:
            upload(limited, data)
        work.clear()
    refusal = SURFACES[surface](limited, pngs)
    assert refusal == {"code": "validation_error", "message": SAYS}
    assert work == []  # counted before any decode
    if surface != "stream":  # nothing of the refused request was kept
        assert all(limited.get(f"/api/v1/images/{content_id(data)}").status_code == 404 for data in pngs)


def test_v1_counts_a_pdf_before_inspecting_or_rendering_it(limited: TestClient, work: list[str]) -> None:
    urls = [data_url(data) for data in PNGS[:LIMIT]] + [data_url(build_pdf(MIXED), "application/pdf")]
    assert over_v1(limited, urls) == {"code": "validation_error", "message": SAYS}
    assert work == []


def test_v1_refuses_an_image_in_an_assistant_message_before_loading_any(limited: TestClient, work: list[str]) -> None:
    image = {"type": "image_url", "image_url": {"url": data_url(PNGS[0])}}
    messages = [
        {"role": "user", "content": [image, {"type": "text", "text": "?"}]},
        {"role": "assistant", "content": [image]},
    ]
    response = limited.post("/v1/chat/completions", json={"model": "imagesense", "messages": messages})
    assert response.status_code == 400
    assert "images go in user messages" in response.json()["error"]["message"]
    assert work == []
