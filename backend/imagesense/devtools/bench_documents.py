"""`imagesense bench-documents`: what a PDF page costs, and what the OCR text adds to an extraction.

- Pages: OCR of the sample PDF (two text-layer pages, one scanned page at 150 dpi), repeated; the median
  time per page by source — PDFium's text layer vs a render read by the fast OCR engine.
- Extraction: the receipt preset on a text-layer page and on the scanned page, with and without the
  page's text in the prompt: prompt tokens, time to read the text first, total time, and whether the
  data validates. With random weights the values are nonsense, so this measures the plumbing (what the
  text costs), not whether it improves accuracy — that needs real weights.

Runs the service in this process on the tiny test checkpoint (or --checkpoint).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from imagesense.commands import wait_until_loaded
from imagesense.devtools.checkpoint import cached_checkpoint
from imagesense.devtools.sample_pdf import MIXED, build_pdf
from imagesense.main import create_app
from imagesense.settings import Settings


def page_times(client: TestClient, document_id: str, repeats: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = defaultdict(list)
    for _ in range(repeats):
        result = client.post("/api/v1/ocr", data={"document_id": document_id}).json()
        for page in result["pages"]:
            times[page["source"]].append(page["elapsed_ms"])
    return times


def extraction(client: TestClient, document_id: str, page: int, use_text: bool, new_tokens: int) -> dict[str, Any]:
    form = {"document_id": document_id, "pages": str(page), "preset": "receipt", "max_new_tokens": str(new_tokens)}
    body: dict[str, Any] = client.post("/api/v1/extract", data=form | {"use_ocr_text": str(use_text).lower()}).json()
    return body


def main(checkpoint: str | None, repeats: int, new_tokens: int) -> None:
    source = checkpoint or str(cached_checkpoint(Path(".cache"), "tiny"))
    settings = Settings(model=source, allowed_hosts=["testserver"], static_dir=Path("/nonexistent"), warmup=False)
    with TestClient(create_app(settings)) as client:
        wait_until_loaded(client, timeout_s=600)
        files = {"file": ("sample.pdf", build_pdf(MIXED), "application/pdf")}
        document_id = client.post("/api/v1/documents", files=files).json()["document_id"]
        print(f"checkpoint: {source}")
        times = page_times(client, document_id, repeats)
        text_ms, scan_ms = statistics.median(times["pdf_text"]), statistics.median(times["ocr"])
        print(f"page OCR, median of {repeats} runs: text layer {text_ms:.1f} ms, scanned {scan_ms:.0f} ms "
              f"({scan_ms / text_ms:.0f}× the text layer)")  # fmt: skip
        for page, kind in ((1, "text-layer page"), (2, "scanned page")):
            for use_text in (False, True):
                run = extraction(client, document_id, page, use_text, new_tokens)
                usage, timings = run["usage"], run["timings"]
                text_in = "in" if use_text else "out"
                print(
                    f"extract receipt, {kind}, page text {text_in}: prompt {usage['prompt_tokens']} "
                    f"tokens ({usage['image_tokens']} visual), reading the text {run['ocr_ms']:.0f} ms, generation "
                    f"{timings['total_ms']:.0f} ms, valid {run['valid']}"
                )
