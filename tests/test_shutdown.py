"""A graceful shutdown, with a real process and a real signal."""

from __future__ import annotations

import base64
import io
import json
import os
import signal
import time
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image
from websockets.sync.client import connect

from live import live_server


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), "orange").save(buffer, "PNG")
    return buffer.getvalue()


def test_sigterm_refuses_new_work_lets_running_work_finish_its_grace_then_stops_it(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    grace = 2.0
    with live_server(
        tiny_checkpoint, tmp_path, shutdown_grace_s=grace, repetition_guard="false", max_new_tokens_limit=20000
    ) as server:
        image_id = httpx.post(f"{server.url}/api/v1/images", files={"file": ("a.png", png())}).json()["image_id"]
        with connect(server.ws_url) as ws:
            ws.send(json.dumps({"task": "describe", "image_ids": [image_id], "options": {"max_new_tokens": 20000}}))
            while json.loads(ws.recv(timeout=30))["type"] != "token":
                pass
            os.kill(server.process.pid, signal.SIGTERM)
            signalled = time.monotonic()
            time.sleep(0.3)

            ready = httpx.get(f"{server.url}/api/v1/ready")
            assert ready.status_code == 503
            assert ready.json()["shutting_down"] is True
            refused = httpx.post(f"{server.url}/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "shutting_down"
            assert int(refused.headers["Retry-After"]) >= 1
            assert httpx.get(f"{server.url}/api/v1/health").status_code == 200  # still alive while draining

            while (event := json.loads(ws.recv(timeout=30)))["type"] == "token":
                pass
            stopped_after = time.monotonic() - signalled
        assert event["type"] == "cancelled"
        assert grace - 0.5 <= stopped_after <= grace + 2.0  # the grace was given, then the work was stopped
        assert server.process.wait(timeout=15) == 0
    log = server.log.read_text()
    assert "shutting down" in log
    assert "Traceback" not in log


def test_a_v1_stream_cut_by_a_shutdown_ends_in_an_error_not_a_finished_answer(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The official SDK must not take a cut answer for a whole one: the SSE stream ends with an error
    chunk (which the SDK raises), never with a finish reason or [DONE]."""
    with live_server(
        tiny_checkpoint, tmp_path, shutdown_grace_s=0.5, repetition_guard="false", max_new_tokens_limit=20000
    ) as server:
        sdk = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        image = "data:image/png;base64," + base64.b64encode(png()).decode()
        content = [{"type": "image_url", "image_url": {"url": image}}, {"type": "text", "text": "Describe it."}]
        stream = sdk.chat.completions.create(
            model="imagesense", messages=[{"role": "user", "content": content}], max_tokens=20000, stream=True
        )
        finishes: list[str] = []
        text: list[str] = []

        def read_all() -> None:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    if not text:
                        os.kill(server.process.pid, signal.SIGTERM)
                    text.append(chunk.choices[0].delta.content)
                finishes.extend(choice.finish_reason for choice in chunk.choices if choice.finish_reason)

        with pytest.raises(openai.APIError, match="shut down before the answer was complete"):
            read_all()
        assert text  # it had spoken ...
        assert finishes == []  # ... and was never said to have finished
        assert server.process.wait(timeout=15) == 0
