"""PDFs end to end: upload and pages, OCR page by page (text layers read exactly, scans recognised),
page selection, limits and passwords, extraction with every preset, the stream's page events, /v1."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pypdf
import pytest
from fastapi.testclient import TestClient

from imagesense.devtools.sample_pdf import MIXED, SamplePage, build_pdf
from imagesense.devtools.samples import character_error_rate
from imagesense.presets import PRESETS, preset_schema
from support import image_bytes, receive_until, service

PDF = build_pdf(MIXED)
SCANNED_CER_BOUND = 0.1  # the fast engine on a clean 150-dpi scan


@pytest.fixture(scope="module")
def docs(tiny_checkpoint: Path) -> Iterator[TestClient]:
    with service(tiny_checkpoint, repetition_guard=False, max_pdf_pages=5) as client:
        yield client


def pdf_file(data: bytes = PDF) -> dict[str, Any]:
    return {"file": ("doc.pdf", data, "application/pdf")}


def encrypted(password: str) -> bytes:
    writer = pypdf.PdfWriter(clone_from=pypdf.PdfReader(io.BytesIO(PDF)))
    writer.encrypt(user_password=password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_upload_lists_the_pages_and_which_have_a_text_layer(docs: TestClient) -> None:
    response = docs.post("/api/v1/documents", files=pdf_file())
    assert response.status_code == 201
    body = response.json()
    assert [page["has_text"] for page in body["pages"]] == [True, False, True]
    assert body["pages"][0]["width_pt"] == 595
    assert docs.get(f"/api/v1/documents/{body['document_id']}").json() == body
    thumbnail = docs.get(f"/api/v1/documents/{body['document_id']}/pages/2.png")
    assert thumbnail.headers["content-type"] == "image/png"
    assert thumbnail.content.startswith(b"\x89PNG")


def test_ocr_of_a_pdf_reads_text_layers_exactly_and_recognises_scans(docs: TestClient) -> None:
    response = docs.post("/api/v1/ocr", files=pdf_file())
    assert response.status_code == 200, response.text
    pages = response.json()["pages"]
    assert [page["source"] for page in pages] == ["pdf_text", "ocr", "pdf_text"]
    assert pages[0]["text"] == MIXED[0].text
    assert pages[2]["text"] == MIXED[2].text
    assert character_error_rate(pages[1]["text"], MIXED[1].text) <= SCANNED_CER_BOUND
    assert pages[0]["elapsed_ms"] < pages[1]["elapsed_ms"]  # no recognition: milliseconds
    assert all(line["confidence"] == 1.0 for line in pages[0]["lines"])
    assert response.json()["text"] == "\n\n".join(page["text"] for page in pages)


def test_pages_select_and_order_what_is_read(docs: TestClient) -> None:
    response = docs.post("/api/v1/ocr", files=pdf_file(), data={"pages": "3,1"})
    assert [page["page"] for page in response.json()["pages"]] == [3, 1]
    refused = docs.post("/api/v1/ocr", files=pdf_file(), data={"pages": "2-7"})
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "pages"
    assert "outside pages 1-3" in refused.json()["error"]["message"]


def test_the_page_cap_and_broken_pdfs_are_clear_4xx(docs: TestClient) -> None:
    six = build_pdf([SamplePage([f"page {n}"]) for n in range(6)])
    over = docs.post("/api/v1/documents", files=pdf_file(six))
    assert over.status_code == 413
    assert "6 pages; the limit is 5 (IMAGESENSE_MAX_PDF_PAGES)" in over.json()["error"]["message"]
    corrupt = docs.post("/api/v1/documents", files=pdf_file(PDF[: len(PDF) // 3]))
    assert corrupt.status_code == 400
    assert corrupt.json()["error"]["code"] == "invalid_document"
    no_pages = docs.post("/api/v1/documents", files=pdf_file(build_pdf([])))  # PDFium refuses an empty page tree
    assert (no_pages.status_code, no_pages.json()["error"]["code"]) == (400, "invalid_document")
    not_pdf = docs.post("/api/v1/documents", files=pdf_file(b"plain text"))
    assert not_pdf.json()["error"]["message"] == "file: not a PDF"


def test_an_encrypted_pdf_needs_its_password(docs: TestClient) -> None:
    locked = encrypted("s3cret")
    missing = docs.post("/api/v1/ocr", files=pdf_file(locked))
    assert missing.status_code == 400
    assert (missing.json()["error"]["code"], missing.json()["error"]["field"]) == ("password_required", "password")
    wrong = docs.post("/api/v1/ocr", files=pdf_file(locked), data={"password": "guess"})
    assert wrong.json()["error"]["code"] == "wrong_password"
    right = docs.post("/api/v1/ocr", files=pdf_file(locked), data={"password": "s3cret", "pages": "1"})
    assert right.status_code == 200
    assert right.json()["pages"][0]["text"] == MIXED[0].text


def test_describe_and_ask_read_pages_rendered_at_the_task_budget(docs: TestClient) -> None:
    described = docs.post("/api/v1/describe", files=pdf_file(), data={"pages": "2", "max_new_tokens": "4"}).json()
    [page] = described["images"]
    assert page["pixel_budget"] == 448 * 448  # describe's budget
    assert page["width"] * page["height"] <= 448 * 448 * 1.01  # rendered to it, not at a fixed dpi
    asked = docs.post(
        "/api/v1/ask",
        files={"files": ("doc.pdf", PDF, "application/pdf")},
        data={"question": "Total?", "max_new_tokens": "4"},
    ).json()
    assert len(asked["images"]) == 3  # every page, within the per-request image limit (4)


@pytest.mark.parametrize("preset", PRESETS)
def test_extract_with_every_preset_returns_valid_data(docs: TestClient, preset: str) -> None:
    response = docs.post(
        "/api/v1/extract", files=pdf_file(), data={"preset": preset, "pages": "1", "max_new_tokens": "300"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["valid"]
    jsonschema.validate(body["data"], preset_schema(preset))  # type: ignore[arg-type]
    assert body["ocr_text_used"]  # the text layer went into the prompt


def test_extract_from_an_image_with_a_schema_and_without_the_ocr_text(docs: TestClient) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    form = {"json_schema": json.dumps(schema), "use_ocr_text": "false", "max_new_tokens": "64"}
    body = docs.post("/api/v1/extract", files={"file": ("a.png", image_bytes(), "image/png")}, data=form).json()
    jsonschema.validate(body["data"], schema)
    assert not body["ocr_text_used"]
    both = docs.post(
        "/api/v1/extract",
        files={"file": ("a.png", image_bytes(), "image/png")},
        data={"json_schema": "{}", "preset": "table"},
    )
    assert both.status_code == 422


def test_the_stream_reports_page_progress(docs: TestClient) -> None:
    document_id = docs.post("/api/v1/documents", files=pdf_file()).json()["document_id"]
    with docs.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps({"task": "ocr", "document_id": document_id}))
        events = receive_until(ws, {"done", "error"})
    assert [(event["page"], event["of"]) for event in events if event["type"] == "page"] == [(1, 3), (2, 3), (3, 3)]
    assert events[-1]["type"] == "done"
    tokens = "".join(event["text"] for event in events if event["type"] == "token")
    assert tokens == events[-1]["result"]["text"]


def test_v1_takes_a_pdf_as_a_data_url(docs: TestClient) -> None:
    url = "data:application/pdf;base64," + base64.b64encode(PDF).decode()
    chat = {
        "model": "imagesense",
        "max_tokens": 4,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "Sum?"}],
            }
        ],
    }
    response = docs.post("/v1/chat/completions", json=chat)
    assert response.status_code == 200, response.text
    assert response.json()["usage"]["prompt_tokens"] > 3 * 100  # three pages of visual tokens


def test_ocr_of_a_pdf_with_engine_vlm_runs_the_vlm(docs: TestClient) -> None:
    body = docs.post("/api/v1/ocr", files=pdf_file(), data={"engine": "vlm", "pages": "1,3", "max_new_tokens": "4"})
    assert body.status_code == 200, body.text
    result = body.json()
    assert result["engine"] == "vlm"
    assert result["model"] != "pdf_text"
    assert len(result["images"]) == 2  # the selected pages, rendered for the model
    assert result["usage"]["image_tokens"] > 0


def test_a_scanned_pdf_under_auto_goes_to_the_vlm_when_the_fast_engine_is_off(tiny_checkpoint: Path) -> None:
    with service(tiny_checkpoint, repetition_guard=False, fast_ocr=False) as client:
        response = client.post("/api/v1/ocr", files=pdf_file(), data={"pages": "2", "max_new_tokens": "4"})
        assert response.status_code == 200, response.text  # it was a 503 although the VLM was ready
        assert response.json()["engine"] == "vlm"


def _occupy(client: TestClient, pool_name: str, seconds: float | None) -> threading.Event:
    """A job that holds ``pool_name``'s only slot for ``seconds`` (None: until the event is set)."""
    release = threading.Event()

    def work(context: Any) -> None:
        release.wait(seconds)

    async def submit() -> None:
        getattr(client.app.state.service.engines, pool_name).submit(work, time.monotonic() + 60)  # type: ignore[attr-defined]

    client.portal.call(submit)  # type: ignore[union-attr]  # pools take work on the event loop
    return release


def test_an_extract_ends_within_one_job_timeout_with_both_pools_busy(tiny_checkpoint: Path) -> None:
    """The OCR step (page 1's text layer, read at once) waits most of the timeout for its pool, then the
    VLM pool is full: the whole request still fails within one IMAGESENSE_JOB_TIMEOUT_S of arrival (its
    VLM job used to get a fresh one: 504 after ~1.6×)."""
    timeout = 3.0
    with service(tiny_checkpoint, repetition_guard=False, job_timeout_s=timeout, max_concurrency=1) as client:
        vlm_busy = _occupy(client, "vlm_pool", None)
        _occupy(client, "ocr_pool", 0.6 * timeout)
        began = time.monotonic()
        response = client.post("/api/v1/extract", files=pdf_file(), data={"preset": "invoice", "pages": "1"})
        took = time.monotonic() - began
        vlm_busy.set()
    assert response.status_code == 504, response.text
    assert took < timeout + 1.0, took
