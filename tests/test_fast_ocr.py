"""The fast OCR engine (PP-OCR through RapidOCR) on rendered pages with exactly known text."""

from __future__ import annotations

import io
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imagesense.devtools.samples import SAMPLES, character_error_rate, sample
from imagesense.engine.protocol import TextLine
from imagesense.engine.rapidocr import RapidOcrEngine
from imagesense.ocr.layout import reading_order, to_upright
from imagesense.ocr.markup import to_text
from support import image_bytes, receive_until, service, upload

# Character error rate allowed per sample (white space ignored). Clean renders must be read exactly or
# nearly; degraded ones get a little room.
CER_BOUND = {
    "document": 0.02,
    "receipt": 0.02,
    "chinese": 0.03,
    "rotated_90": 0.02,
    "upside_down": 0.02,
    "rotated_270": 0.02,
    "low_contrast": 0.05,
    "sign": 0.05,
    "receipt_photo": 0.05,
    "skewed_3": 0.02,
    "skewed_minus_4": 0.02,
    "skewed_zh": 0.02,
    "two_columns": 0.03,
    "two_columns_zh": 0.03,
    "rotated_zh_90": 0.02,
    "rotated_zh_180": 0.02,
    "rotated_zh_270": 0.02,
    "skewed_minus_2_zh": 0.02,
    "skewed_5": 0.02,
    "table_wrapped": 0.02,
    "invoice": 0.02,
    "perspective_page": 0.03,
}
ROTATION = {
    "rotated_90": 90,
    "upside_down": 180,
    "rotated_270": 270,
    "rotated_zh_90": 90,
    "rotated_zh_180": 180,
    "rotated_zh_270": 270,
}


@pytest.fixture(scope="module")
def engine() -> RapidOcrEngine:
    reader = RapidOcrEngine(threads=2)
    reader.warm_up()
    return reader


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_every_sample_has_a_bound() -> None:
    assert set(CER_BOUND) == set(SAMPLES)


@pytest.mark.parametrize("name", list(SAMPLES))
def test_text_is_read_within_the_error_bound_and_in_line_order(engine: RapidOcrEngine, name: str) -> None:
    page = sample(name)
    output = engine.read(page.image)
    rows = reading_order(output.lines, output.rotation, page.image.width, page.image.height)
    text = to_text(rows)
    assert character_error_rate(text, page.text) <= CER_BOUND[name], text
    assert len(rows) == len(page.lines), text  # one output line per printed line
    assert output.rotation == ROTATION.get(name, 0)


@pytest.mark.parametrize("name", ["document", "rotated_90", "upside_down", "rotated_270"])
def test_boxes_lie_on_the_printed_lines(engine: RapidOcrEngine, name: str) -> None:
    page = sample(name)
    output = engine.read(page.image)
    rows = reading_order(output.lines, output.rotation, page.image.width, page.image.height)
    size, margin = 28, 40  # as rendered by samples.render
    for index, row in enumerate(rows):
        expected_middle = margin + index * int(size * 1.8) + size * 0.6
        for [line] in row:
            assert all(0 <= x <= page.image.width and 0 <= y <= page.image.height for x, y in line.box)
            upright = [to_upright(point, output.rotation, page.image.width, page.image.height) for point in line.box]
            middle = sum(y for _, y in upright) / 4
            assert abs(middle - expected_middle) < size * 0.6, (line.text, middle, expected_middle)
            assert min(x for x, _ in upright) >= margin - 12  # starts at the left margin or later


def test_reading_order_joins_columns_of_a_row() -> None:
    def line(text: str, left: float, top: float) -> TextLine:
        return TextLine(text, 0.9, ((left, top), (left + 50, top), (left + 50, top + 20), (left, top + 20)))

    lines = [line("2.80", 300, 52), line("Espresso", 10, 50), line("CAFE", 10, 10), line("3.20", 300, 90)]
    assert to_text(reading_order(lines, 0, 400, 200)) == "CAFE\nEspresso 2.80\n3.20"


def test_nothing_is_fetched_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*_args: Any, **_kwargs: Any) -> None:
        raise AssertionError("the fast OCR engine tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    reader = RapidOcrEngine(threads=1)  # loads the models bundled in the wheel
    page = sample("receipt")
    assert character_error_rate(to_text([[[line]] for line in reader.read(page.image).lines]), page.text) < 0.1


@pytest.fixture(scope="module")
def fast_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """No VLM weights at all: the fast engine alone must carry OCR."""
    with service(tmp_path_factory.mktemp("empty") / "no-model") as test_client:
        yield test_client


def test_without_vlm_weights_fast_ocr_serves_receipts(fast_only: TestClient) -> None:
    ready = fast_only.get("/api/v1/ready")
    assert ready.status_code == 200
    assert ready.json()["fast_ocr"]["status"] == "ready"
    assert ready.json()["vlm"]["status"] == "failed"
    page = sample("receipt_photo")
    response = fast_only.post("/api/v1/ocr", files={"file": ("receipt.jpg", png(page.image), "image/png")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["engine"] == "fast"
    assert body["task"] == "ocr"
    assert character_error_rate(body["text"], page.text) <= CER_BOUND["receipt_photo"]
    assert len(body["lines"]) >= len(page.lines)
    assert all(len(line["box"]) == 4 and 0 < line["confidence"] <= 1 for line in body["lines"])
    assert "| Espresso | 2.80 |" in body["markdown"]
    assert body["reading_order"] == "layout"
    [table] = body["tables"]
    assert {"row": 0, "col": 1, "text": "2.80"} in table["cells"]
    assert sorted(i for block in body["blocks"] for i in block["lines"]) == list(range(len(body["lines"])))
    assert body["timings"]["total_ms"] < 5000
    vlm_only = fast_only.post("/api/v1/ocr", data={"engine": "vlm"}, files={"file": ("r.png", png(page.image))})
    assert vlm_only.status_code == 503
    assert "IMAGESENSE_MODEL" in vlm_only.json()["error"]["message"]
    assert fast_only.get("/api/v1/stats").json()["fast_ocr"]["completed"] >= 1


def test_boxes_are_in_the_coordinates_of_the_upload(fast_only: TestClient) -> None:
    page = sample("upside_down")
    body = fast_only.post("/api/v1/ocr", files={"file": ("p.png", png(page.image))}, data={"engine": "fast"}).json()
    assert body["rotation"] == 180
    assert body["text"].splitlines()[0] == "INVOICE No. 2026-1125"
    first_box = body["lines"][0]["box"]
    # Upside down, the first line sits at the bottom of the uploaded image.
    assert min(y for _, y in first_box) > page.image.height / 2


def test_the_stream_runs_fast_ocr(fast_only: TestClient) -> None:
    image_id = upload(fast_only, png(sample("chinese").image))
    with fast_only.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(f'{{"task": "ocr", "image_ids": ["{image_id}"], "options": {{"engine": "fast"}}}}')
        events = receive_until(ws, {"done", "error"})
    result = events[-1]["result"]
    assert result["engine"] == "fast"
    assert result["text"].startswith("发票号码")


def test_auto_falls_back_to_the_vlm_when_no_text_is_found(client: TestClient) -> None:
    blank = client.post("/api/v1/ocr", files={"file": ("b.png", image_bytes((300, 200)))}, data={"max_new_tokens": 3})
    assert blank.status_code == 200
    assert blank.json()["engine"] == "vlm"
    printed = client.post("/api/v1/ocr", files={"file": ("d.png", png(sample("document").image))})
    assert printed.json()["engine"] == "fast"


def test_auto_gives_text_on_an_arc_to_the_vlm(client: TestClient) -> None:
    """Words set along an arch read with high confidence one by one, but no row order is trustworthy:
    the fast result says so, and auto hands the page to the VLM and says it did."""
    page = png(sample("arc").image)
    fast = client.post("/api/v1/ocr", files={"file": ("a.png", page)}, data={"engine": "fast"}).json()
    assert fast["layout_confidence"] < 0.6
    assert all(line["confidence"] > 0.75 for line in fast["lines"])  # line confidence alone would keep it
    auto = client.post("/api/v1/ocr", files={"file": ("a.png", page)}, data={"max_new_tokens": 3}).json()
    assert (auto["engine"], auto["reading_order"]) == ("vlm", "model")
    printed = client.post("/api/v1/ocr", files={"file": ("d.png", png(sample("perspective_page").image))}).json()
    assert (printed["engine"], printed["layout_confidence"]) == ("fast", 1.0)


def test_fast_ocr_does_not_wait_behind_generations(tiny_checkpoint: Path) -> None:
    with service(tiny_checkpoint, max_concurrency=1, queue_size=0, repetition_guard=False) as busy:
        image_id = upload(busy)
        with busy.websocket_connect("/api/v1/stream") as ws:
            ws.send_text(f'{{"task": "describe", "image_ids": ["{image_id}"], "options": {{"max_new_tokens": 2000}}}}')
            receive_until(ws, {"token"})
            assert busy.post("/api/v1/describe", data={"image_id": image_id}).status_code == 429
            page = png(sample("receipt").image)
            fast = busy.post("/api/v1/ocr", files={"file": ("r.png", page)}, data={"engine": "fast"})
            assert fast.status_code == 200
            assert fast.json()["engine"] == "fast"
            ws.send_text('{"type": "cancel"}')
            receive_until(ws, {"cancelled"})


def test_several_images_go_to_the_vlm_or_are_refused_by_the_fast_engine(client: TestClient) -> None:
    ids = [upload(client, png(sample(name).image)) for name in ("receipt", "document")]
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps({"task": "ocr", "image_ids": ids, "options": {"max_new_tokens": 3}}))
        result = receive_until(ws, {"done", "error"})[-1]["result"]
        assert result["engine"] == "vlm"
        assert len(result["images"]) == 2
        ws.send_text(json.dumps({"task": "ocr", "image_ids": ids, "options": {"engine": "fast"}}))
        error = receive_until(ws, {"done", "error"})[-1]
        assert error["type"] == "error"
        assert error["field"] == "image_ids"
        assert "one image" in error["message"]
