"""The `imagesense` command: serve for real on a port, write the spec, build a checkpoint."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from imagesense.cli import main
from imagesense.devtools.loopback import free_port
from support import image_bytes


def test_serve_answers_over_real_http(tiny_checkpoint: Path) -> None:
    port = free_port()
    env = os.environ | {"IMAGESENSE_WARMUP": "true", "IMAGESENSE_STATIC_DIR": "/nonexistent"}
    command = [sys.executable, "-m", "imagesense", "serve", "--port", str(port), "--model", str(tiny_checkpoint)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else "server exited"
            try:
                if httpx.get(f"{base}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        assert httpx.get(f"http://127.0.0.1:{port}/docs").status_code == 200
        files = {"file": ("a.png", image_bytes(), "image/png")}
        response = httpx.post(f"{base}/describe", files=files, data={"max_new_tokens": "4"}, timeout=60)
        assert response.status_code == 200
        assert response.json()["usage"]["completion_tokens"] == 4
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_openapi_is_written_without_a_model(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    main(["openapi", "--out", str(out)])
    spec = json.loads(out.read_text())
    assert spec["info"]["title"] == "ImageSense"
    assert "/api/v1/ocr" in spec["paths"]
    assert "TaskResult" in spec["components"]["schemas"]


def test_build_checkpoint_writes_a_loadable_folder(tmp_path: Path) -> None:
    main(["build-checkpoint", str(tmp_path / "tiny"), "--architecture", "tiny"])
    names = {path.name for path in (tmp_path / "tiny").iterdir()}
    required = {"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json", "chat_template.jinja"}
    assert required <= names
    config = json.loads((tmp_path / "tiny" / "config.json").read_text())
    assert config["model_type"] == "qwen3_vl"
    assert config["image_token_id"] == 151655


def test_readme_documents_every_setting() -> None:
    from imagesense.settings import Settings

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [name for name in Settings.model_fields if f"`IMAGESENSE_{name.upper()}`" not in readme]
    assert not missing, f"settings missing from the README's table: {missing}"


def test_bench_ocr_prints_latency_and_cer_per_page(capsys: pytest.CaptureFixture[str]) -> None:
    from imagesense.devtools.samples import SAMPLES

    main(["bench-ocr", "--engines", "fast", "--repeats", "1"])
    table = capsys.readouterr().out
    for name in SAMPLES:
        assert name in table
    assert "mean CER" in table


def test_bench_smoke_runs_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    main(["bench", "--tiny", "--profiles", "none,int8-weight"])
    table = capsys.readouterr().out
    for line in ("naive (fp32, full res)", "engine, default budget", "engine, equal work", "engine, follow-up"):
        assert line in table
    for ratio in ("vs naive", "follow-up with history", "two at once", "service overhead", "per-layer output error"):
        assert ratio in table


def test_bench_limits_smoke_run_measures_both(capsys: pytest.CaptureFixture[str]) -> None:
    main(["bench-limits", "--tiny"])
    out = capsys.readouterr().out
    freed = re.search(r"the slot was free (\d+\.\d+) s later .* the client got 'cancelled'", out)
    assert freed is not None, out
    assert float(freed.group(1)) < 5.0
    answers = re.search(r"peak RSS growth (\d+) MB, answers (.*);", out)
    assert answers is not None, out
    assert answers.group(2) == "201×8"


def test_download_takes_the_revision_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    fetched: list[tuple[str, str | None]] = []

    def snapshot_download(model: str, revision: str | None = None) -> str:
        fetched.append((model, revision))
        return "/cache/path"

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    monkeypatch.setenv("IMAGESENSE_MODEL", "Qwen/Qwen3-VL-2B-Instruct")
    monkeypatch.setenv("IMAGESENSE_MODEL_REVISION", "v1.0")
    main(["download"])
    main(["download", "--revision", "main"])
    main(["download", "--model", "Other/Model"])  # another model: the setting's revision is not its own
    assert fetched == [
        ("Qwen/Qwen3-VL-2B-Instruct", "v1.0"),
        ("Qwen/Qwen3-VL-2B-Instruct", "main"),
        ("Other/Model", None),
    ]
