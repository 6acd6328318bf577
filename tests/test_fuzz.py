"""Fuzzing against the spec: schemathesis (every check) on the running service with the tiny checkpoint,
API keys on (a shared deployment: the checks include requests without the key, which must get 401).
Uploads are real images of every accepted format as well as garbage (fuzz_hooks.py); half the bodies
name an uploaded image so that fuzzed options reach the model. The run must find 0 failures: no server
error and no response that breaks the schema."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
from PIL import Image

from live import live_server

TESTS = Path(__file__).parent
EXAMPLES = 60  # per operation and phase: a few minutes in all on 2 cores
KEY = "fuzz-key-0123456789abcdef"


def test_the_fuzzer_finds_no_server_error_and_no_response_outside_the_schema(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    with live_server(
        tiny_checkpoint,
        tmp_path,
        max_new_tokens_limit=16,
        job_timeout_s=30,
        repetition_guard="false",
        api_keys=f'["{KEY}"]',
    ) as server:
        auth = {"Authorization": f"Bearer {KEY}"}
        buffer = io.BytesIO()
        Image.new("RGB", (320, 240), "seagreen").save(buffer, "PNG")
        uploaded = httpx.post(f"{server.url}/api/v1/images", files={"file": ("a.png", buffer.getvalue())}, headers=auth)
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "fuzz_hooks",
            "PYTHONPATH": str(TESTS),
            "IMAGESENSE_FUZZ_IMAGE_ID": uploaded.json()["image_id"],
        }
        command = [
            str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(TESTS / "schemathesis.toml"),
            "--no-color", "run", f"{server.url}/openapi.json", "--checks", "all", "--max-examples", str(EXAMPLES),
            "--seed", "1", "--request-timeout", "60", "--header", f"Authorization: Bearer {KEY}",
        ]  # fmt: skip
        run = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
        stats = httpx.get(f"{server.url}/api/v1/stats", headers=auth).json()
    summary = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    print(f"\nfuzz: {summary.group(0) if summary else run.stdout[-2000:]}; model runs {stats['completed']}, "
          f"fast OCR runs {stats['fast_ocr']['completed']}, failed {stats['failed']}")  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:]
    assert summary is not None
    assert summary.group(1) == summary.group(2)
    assert stats["completed"] > 0  # the model was reached, not only the validation
    assert stats["failed"] == stats["fast_ocr"]["failed"] == 0
    assert "Traceback" not in server.log.read_text()
