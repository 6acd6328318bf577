"""`imagesense ocr|describe|ask|extract` as a user runs them: a subprocess, on a PDF and an image, in
this process's own service and against a running server; text or --json; exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagesense.devtools.loopback import free_port
from imagesense.devtools.sample_pdf import MIXED, build_pdf
from live import LiveServer, live_server
from support import image_bytes


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inputs")
    (folder / "doc.pdf").write_bytes(build_pdf(MIXED))
    (folder / "photo.png").write_bytes(image_bytes((200, 150), color="olive"))
    return {"pdf": folder / "doc.pdf", "image": folder / "photo.png"}


@pytest.fixture(scope="module")
def server(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(
        tiny_checkpoint, tmp_path_factory.mktemp("cli"), api_keys='["cli-key-0123456789abcdef"]'
    ) as running:
        yield running


def imagesense(*args: str, checkpoint: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "IMAGESENSE_MODEL": str(checkpoint),
        "IMAGESENSE_WARMUP": "false",
        "IMAGESENSE_DTYPE": "float32",
        "IMAGESENSE_QUANTIZATION": "none",
        **env,
    }
    command = [sys.executable, "-c", "from imagesense.cli import main; main()", *args]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300, check=False)


def test_ocr_of_a_pdf_in_process_prints_the_text_and_page_progress(
    tiny_checkpoint: Path, files: dict[str, Path]
) -> None:
    done = imagesense("ocr", str(files["pdf"]), "--pages", "1,3", checkpoint=tiny_checkpoint)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{MIXED[0].text}\n\n{MIXED[2].text}"
    assert "page 2 of 2" in done.stderr


def test_against_a_server_with_a_key_text_and_json(
    tiny_checkpoint: Path, files: dict[str, Path], server: LiveServer
) -> None:
    remote = {"IMAGESENSE_API_KEY": "cli-key-0123456789abcdef"}
    text = imagesense("ocr", str(files["pdf"]), "--server", server.url, checkpoint=tiny_checkpoint, **remote)
    assert text.returncode == 0, text.stderr
    assert MIXED[2].text in text.stdout
    as_json = imagesense(
        "ocr", str(files["pdf"]), "--json", "--server", server.url, checkpoint=tiny_checkpoint, **remote
    )
    assert [page["source"] for page in json.loads(as_json.stdout)["pages"]] == ["pdf_text", "ocr", "pdf_text"]
    described = imagesense(
        "describe", str(files["image"]), "--json", "--max-new-tokens", "4", "--server", server.url,
        checkpoint=tiny_checkpoint, **remote,
    )  # fmt: skip
    assert json.loads(described.stdout)["task"] == "describe"
    extracted = imagesense(
        "extract", str(files["pdf"]), "--preset", "receipt", "--pages", "2", "--max-new-tokens", "300",
        "--server", server.url, checkpoint=tiny_checkpoint, **remote,
    )  # fmt: skip
    assert extracted.returncode == 0, extracted.stderr
    assert set(json.loads(extracted.stdout)) >= {"merchant", "items", "total"}  # the data itself
    unkeyed = imagesense("ocr", str(files["image"]), "--server", server.url, checkpoint=tiny_checkpoint)
    assert unkeyed.returncode == 2
    assert "401" in unkeyed.stderr


def test_ask_in_process_on_an_image(tiny_checkpoint: Path, files: dict[str, Path]) -> None:
    asked = imagesense(
        "ask", str(files["image"]), "-q", "What colour?", "--max-new-tokens", "4", checkpoint=tiny_checkpoint
    )
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip()


def test_exit_codes_tell_bad_input_from_a_server_that_failed(tiny_checkpoint: Path, files: dict[str, Path]) -> None:
    unreachable = f"http://127.0.0.1:{free_port()}"
    missing = imagesense("ocr", "/nonexistent.pdf", "--server", unreachable, checkpoint=tiny_checkpoint)
    assert missing.returncode == 2
    assert "No such file" in missing.stderr
    down = imagesense("ocr", str(files["image"]), "--server", unreachable, checkpoint=tiny_checkpoint)
    assert down.returncode == 3
    assert "could not be reached" in down.stderr
