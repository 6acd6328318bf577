"""Remote mode against a real OpenAI-compatible upstream: a second ImageSense process serving `/v1` on
the tiny checkpoint. Describe, ask, stream, cancel, JSON schema and an outage behave as in local mode."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest
from fastapi.testclient import TestClient

from live import LiveServer, live_server
from support import image_bytes, receive_until, service, upload, wait_until

SCHEMA = {
    "type": "object",
    "properties": {"colour": {"type": "string", "maxLength": 12}, "count": {"type": "integer"}},
    "required": ["colour", "count"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def upstream(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(tiny_checkpoint, tmp_path_factory.mktemp("upstream"), repetition_guard="false") as server:
        yield server


@pytest.fixture(scope="module")
def remote(upstream: LiveServer) -> Iterator[TestClient]:
    """This service in remote mode: no local model at all (its model path does not exist)."""
    with service(
        Path("/nonexistent/no-local-model"), engine="remote", remote_url=f"{upstream.url}/v1", remote_model="imagesense"
    ) as client:
        yield client


def upstream_stats(upstream: LiveServer) -> dict[str, int]:
    stats: dict[str, int] = httpx.get(f"{upstream.url}/api/v1/stats").json()
    return stats


def test_ready_names_the_upstream_and_no_model_is_loaded(remote: TestClient, upstream: LiveServer) -> None:
    vlm = remote.get("/api/v1/ready").json()["vlm"]
    assert vlm["status"] == "ready"
    assert f"{upstream.url}/v1" in vlm["model"]
    assert vlm["dtype"] == "remote"


def test_describe_and_ask_run_on_the_upstream(remote: TestClient, upstream: LiveServer) -> None:
    before = upstream_stats(upstream)["completed"]
    image_id = upload(remote)
    described = remote.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 8})
    assert described.status_code == 200, described.text
    body = described.json()
    assert body["text"]
    assert body["finish_reason"] in ("stop", "length")
    assert body["usage"]["completion_tokens"] >= 1
    assert body["usage"]["prompt_tokens"] > body["usage"]["image_tokens"] > 0
    asked = remote.post("/api/v1/ask", data={"image_ids": image_id, "question": "What?", "max_new_tokens": 5})
    assert asked.status_code == 200, asked.text
    assert upstream_stats(upstream)["completed"] == before + 2  # both generations ran there


def test_json_schema_passes_through(remote: TestClient) -> None:
    image_id = upload(remote)
    response = remote.post(
        "/api/v1/ask",
        data={"image_ids": image_id, "question": "Colour and count?", "json_schema": json.dumps(SCHEMA)},
    )
    assert response.status_code == 200, response.text
    jsonschema.validate(response.json()["data"], SCHEMA)  # the upstream constrained it; we parsed it


def test_the_stream_streams_and_a_cancel_stops_the_upstream(remote: TestClient, upstream: LiveServer) -> None:
    image_id = upload(remote)
    with remote.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps({"task": "describe", "image_ids": [image_id], "options": {"max_new_tokens": 2000}}))
        tokens = receive_until(ws, {"token"})
        assert tokens[-1]["type"] == "token"
        assert upstream_stats(upstream)["active"] == 1
        ws.send_text('{"type": "cancel"}')
        assert receive_until(ws, {"cancelled", "done", "error"})[-1]["type"] == "cancelled"
    # The closed connection reached the upstream: its slot is free again, long before 2000 tokens.
    assert wait_until(lambda: upstream_stats(upstream)["active"] == 0, timeout_s=10)
    assert upstream_stats(upstream)["cancelled"] >= 1
    assert remote.get("/api/v1/stats").json()["active"] == 0


def test_an_upstream_outage_is_a_clear_503_and_ready_says_why(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with live_server(tiny_checkpoint, tmp_path) as short_lived:
        url = f"{short_lived.url}/v1"
        with service(Path("/nonexistent/none"), engine="remote", remote_url=url, remote_model="imagesense") as client:
            image_id = upload(client)
            assert client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2}).status_code == 200
            short_lived.process.kill()
            short_lived.process.wait(timeout=30)
            down = client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2})
            assert down.status_code == 503
            assert "Retry-After" in down.headers
            assert url in down.json()["error"]["message"]
            ready = client.get("/api/v1/ready")
            assert ready.json()["vlm"]["status"] == "failed"
            assert url in ready.json()["vlm"]["reason"]
            assert client.get("/api/v1/ready?engine=fast_ocr").status_code == 200  # fast OCR runs here


def test_the_openai_api_runs_on_the_upstream_too(remote: TestClient) -> None:
    image = "data:image/png;base64," + base64.b64encode(image_bytes()).decode()
    body = {
        "model": "imagesense",
        "max_tokens": 4,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "What?"}, {"type": "image_url", "image_url": image}]}
        ],
    }
    response = remote.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["choices"][0]["message"]["content"]
    assert answer["usage"]["completion_tokens"] >= 1
