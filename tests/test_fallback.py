"""auto OCR's fallback to the VLM: whatever happens to the VLM, the fast result stands, and what a streaming
client assembles is always the final text."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imagesense.devtools.samples import sample
from imagesense.engine.protocol import GenerationControl, GenerationRequest, GenerationResult
from support import TERMINAL_EVENTS, receive_until, service, upload, wait_until


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@contextmanager
def always_falling_back() -> Iterator[None]:
    """auto OCR asks the VLM after every fast read: these tests are about the fallback failing, not about
    when it starts (a clean page can be read at confidence 1.0 and not fall back at all)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("imagesense.service.ocr_needs_fallback", lambda _result, _settings: True)
        yield


@pytest.fixture(scope="module")
def eager(tiny_checkpoint: Path) -> Iterator[TestClient]:
    """auto OCR that always asks the VLM, one generation at a time."""
    with (
        always_falling_back(),
        service(tiny_checkpoint, max_concurrency=1, queue_size=0, repetition_guard=False) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def page_id(eager: TestClient) -> str:
    return upload(eager, png(sample("document").image))


def replace_generate(
    client: TestClient, fake: Callable[[GenerationRequest, GenerationControl], GenerationResult]
) -> Callable[[], None]:
    engine = client.app.state.service.engines.vlm.get()  # type: ignore[attr-defined]
    original = engine.generate
    engine.generate = fake
    return lambda: setattr(engine, "generate", original)


def speaks_then(fail: Callable[[GenerationControl], GenerationResult]) -> Callable[..., GenerationResult]:
    def generate(_request: GenerationRequest, control: GenerationControl) -> GenerationResult:
        control.emit("words of the VLM")
        return fail(control)

    return generate


def crash(_control: GenerationControl) -> GenerationResult:
    raise RuntimeError("the VLM crashed in /opt/secret/path")


def run_ocr(client: TestClient, image_id: str) -> list[dict[str, Any]]:
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps({"task": "ocr", "image_ids": [image_id]}))
        return receive_until(ws, TERMINAL_EVENTS)


def assembled(events: list[dict[str, Any]]) -> str:
    text = ""
    for event in events:
        if event["type"] == "reset":
            text = ""
        elif event["type"] == "token":
            text += event["text"]
    return text


def test_a_crashing_fallback_leaves_the_fast_result_and_the_stream_agrees(
    eager: TestClient, page_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    restore = replace_generate(eager, speaks_then(crash))
    try:
        events = run_ocr(eager, page_id)
        http = eager.post("/api/v1/ocr", data={"image_id": page_id})
    finally:
        restore()
    done = events[-1]
    assert done["type"] == "done"
    assert done["result"]["engine"] == "fast"
    assert "words of the VLM" in [event.get("text") for event in events]  # the VLM had spoken ...
    assert assembled(events) == done["result"]["text"]  # ... and the client was told to start over
    assert [event["type"] for event in events].count("reset") == 2
    assert http.status_code == 200
    assert http.json()["engine"] == "fast"
    assert "secret" not in http.text
    assert any("fallback failed" in record.message and record.exc_info for record in caplog.records)


def test_a_fallback_past_the_deadline_leaves_the_fast_result_within_the_deadline(tiny_checkpoint: Path) -> None:
    def slow(control: GenerationControl) -> GenerationResult:
        while not control.should_stop():
            time.sleep(0.01)
        raise AssertionError("the engine is asked to stop at the deadline")

    with always_falling_back(), service(tiny_checkpoint, job_timeout_s=3.0) as client:
        image_id = upload(client, png(sample("document").image))
        restore = replace_generate(client, speaks_then(slow))
        try:
            began = time.monotonic()
            events = run_ocr(client, image_id)
            elapsed = time.monotonic() - began
        finally:
            restore()
        assert events[-1]["type"] == "done"
        assert events[-1]["result"]["engine"] == "fast"
        assert assembled(events) == events[-1]["result"]["text"]
        assert elapsed < 3.0 + 1.0  # one deadline for the whole request, the fallback inside it
        assert wait_until(lambda: client.get("/api/v1/stats").json()["timed_out"] == 1)


def test_a_refused_fallback_leaves_the_fast_result(eager: TestClient, page_id: str) -> None:
    release = threading.Event()

    def blocking(_request: GenerationRequest, control: GenerationControl) -> GenerationResult:
        while not release.wait(0.01) and not control.should_stop():
            pass
        return GenerationResult("", "stop", 1, 0, 0, 1.0, 0.0)

    restore = replace_generate(eager, blocking)
    other = upload(eager)
    try:
        with eager.websocket_connect("/api/v1/stream") as busy:
            busy.send_text(json.dumps({"task": "describe", "image_ids": [other]}))
            receive_until(busy, {"started"})  # the only slot is taken, and the queue holds nothing
            events = run_ocr(eager, page_id)
            release.set()
            receive_until(busy, TERMINAL_EVENTS)
    finally:
        restore()
    assert events[-1]["result"]["engine"] == "fast"
    assert "reset" not in [event["type"] for event in events]
    assert assembled(events) == events[-1]["result"]["text"]


def test_a_client_that_cancels_during_the_fallback_gets_a_cancellation(eager: TestClient, page_id: str) -> None:
    def endless(control: GenerationControl) -> GenerationResult:
        while not control.should_stop():
            time.sleep(0.01)
        return GenerationResult("", "cancelled", 1, 0, 0, 1.0, 0.0)

    restore = replace_generate(eager, speaks_then(endless))
    try:
        with eager.websocket_connect("/api/v1/stream") as ws:
            ws.send_text(json.dumps({"task": "ocr", "image_ids": [page_id]}))
            receive_until(ws, {"reset"})  # the VLM has taken over
            ws.send_text(json.dumps({"type": "cancel"}))
            assert receive_until(ws, TERMINAL_EVENTS)[-1]["type"] == "cancelled"
    finally:
        restore()
    assert wait_until(lambda: eager.get("/api/v1/stats").json()["active"] == 0)
