"""No request can take the service down, hold a slot it no longer needs, or vanish without a trace."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from imagesense.engine.protocol import GenerationControl, GenerationRequest, GenerationResult
from imagesense.logs import configure_logging, request_id
from imagesense.main import FORM_SLACK_BYTES
from imagesense.schemas.stream import MAX_STREAM_MESSAGE_BYTES
from support import TERMINAL_EVENTS, image_bytes, receive_until, run_request, service, stats, upload, wait_until


@pytest.fixture(scope="module")
def tight(tiny_checkpoint: Path) -> Iterator[TestClient]:
    """A small prompt budget, small uploads and one slot, so every limit is near."""
    with service(
        tiny_checkpoint,
        max_prompt_tokens=256,
        max_upload_bytes=64 * 1024,
        max_images_per_request=2,
        max_concurrency=1,
        queue_size=1,
        repetition_guard=False,
    ) as client:
        yield client


def test_a_binary_frame_gets_an_error_event_and_the_socket_stays_open(client: TestClient) -> None:
    image_id = upload(client)
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_bytes(b"\x00\x01 not text")
        error = receive_until(ws, TERMINAL_EVENTS)[-1]
        assert (error["type"], error["code"]) == ("error", "validation_error")
        assert "binary" in error["message"]
        ws.send_text(run_request([image_id], "describe", max_new_tokens=2))
        assert receive_until(ws, TERMINAL_EVENTS)[-1]["type"] == "done"


def test_an_oversized_stream_message_is_refused_with_its_limit(client: TestClient) -> None:
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps({"task": "ask", "image_ids": ["x"], "question": "q" * MAX_STREAM_MESSAGE_BYTES}))
        error = receive_until(ws, TERMINAL_EVENTS)[-1]
        assert error["type"] == "error"
        assert str(MAX_STREAM_MESSAGE_BYTES) in error["message"]


def test_a_prompt_over_the_token_budget_is_refused_before_any_model_work(tight: TestClient) -> None:
    image_id = upload(tight)
    history = [{"role": ("user", "assistant")[i % 2], "content": "many words " * 60} for i in range(4)]
    before = stats(tight)
    response = tight.post(
        "/api/v1/ask", data={"question": "?", "image_ids": [image_id], "history": json.dumps(history)}
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["field"] == "history"
    assert "the limit is 256 tokens" in error["message"]
    assert "IMAGESENSE_MAX_PROMPT_TOKENS" in error["message"]
    with tight.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps({"task": "ask", "image_ids": [image_id], "question": "?", "history": history}))
        event = receive_until(ws, TERMINAL_EVENTS)[-1]
    assert (event["code"], event["field"], event["message"]) == ("validation_error", "history", error["message"])
    after = stats(tight)
    assert after["completed"] == before["completed"]  # nothing was generated
    assert after["active"] == 0


def test_request_ids_are_echoed_and_named_in_every_error(client: TestClient) -> None:
    mine = client.get("/api/v1/health", headers={"X-Request-ID": "client-42"})
    assert mine.headers["x-request-id"] == "client-42"
    made = client.get("/api/v1/images/" + "0" * 32)
    assert made.status_code == 404
    assert made.json()["error"]["request_id"] == made.headers["x-request-id"]
    assert len(made.headers["x-request-id"]) == 32
    hostile = client.get("/api/v1/health", headers={"X-Request-ID": "bad id\twith spaces" + "x" * 200})
    assert hostile.headers["x-request-id"] != "bad id\twith spaces"  # not a log-injection vector


def test_a_body_over_the_limit_is_refused_before_it_is_read(tight: TestClient) -> None:
    limit = 2 * 64 * 1024 + FORM_SLACK_BYTES
    declared = tight.post(
        "/api/v1/images", content=b"x" * 16, headers={"Content-Length": str(limit + 1), "Content-Type": "image/png"}
    )
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"
    assert str(limit) in declared.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(limit // 65536 + 2):
            yield b"y" * 65536

    streamed = tight.post(
        "/api/v1/images", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"


def test_an_engine_crash_is_a_typed_error_with_its_request_id_and_the_worker_lives_on(
    tight: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    engine = tight.app.state.service.engines.vlm.get()  # type: ignore[attr-defined]
    original = engine.generate

    def crashing(_request: GenerationRequest, control: GenerationControl) -> GenerationResult:
        control.emit("half an answer")
        raise RuntimeError("CUDA kernel exploded in /srv/imagesense/secret.py")

    image_id = upload(tight)
    engine.generate = crashing
    try:
        with caplog.at_level(logging.ERROR, logger="imagesense"):
            response = tight.post("/api/v1/describe", data={"image_id": image_id}, headers={"X-Request-ID": "crash-1"})
            with tight.websocket_connect("/api/v1/stream", headers={"X-Request-ID": "crash-2"}) as ws:
                ws.send_text(run_request([image_id], "describe"))
                event = receive_until(ws, TERMINAL_EVENTS)[-1]
    finally:
        engine.generate = original
    assert response.status_code == 500
    error = response.json()["error"]
    assert (error["code"], error["request_id"]) == ("internal_error", "crash-1")
    assert (event["type"], event["code"], event["request_id"]) == ("error", "internal_error", "crash-2")
    assert "secret" not in response.text + json.dumps(event)
    crashes = [record for record in caplog.records if record.exc_info and "crash" in getattr(record, "request_id", "")]
    assert {record.request_id for record in crashes} >= {"crash-1", "crash-2"}  # type: ignore[attr-defined]
    assert wait_until(lambda: stats(tight)["active"] == 0)
    served = tight.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2})
    assert served.status_code == 200


def test_a_queued_stream_task_times_out_at_its_deadline(tiny_checkpoint: Path) -> None:
    with service(tiny_checkpoint, max_concurrency=1, queue_size=1, job_timeout_s=1.0, repetition_guard=False) as client:
        engine = client.app.state.service.engines.vlm.get()  # type: ignore[attr-defined]
        original = engine.generate

        release = threading.Event()

        def slow_to_stop(_request: GenerationRequest, _control: GenerationControl) -> GenerationResult:
            release.wait(10)  # holds its slot past its own deadline: the job behind it stays queued
            return GenerationResult("", "cancelled", 1, 0, 0, 1.0, 0.0)

        engine.generate = slow_to_stop
        image_id = upload(client, image_bytes(color="navy"))
        try:
            with (
                client.websocket_connect("/api/v1/stream") as first,
                client.websocket_connect("/api/v1/stream") as second,
            ):
                first.send_text(run_request([image_id], "describe"))
                receive_until(first, {"started"})
                began = time.monotonic()
                second.send_text(run_request([image_id], "describe"))
                events = receive_until(second, TERMINAL_EVENTS)
                waited = time.monotonic() - began
                assert [event["type"] for event in events] == ["queued", "error"]
                assert events[-1]["code"] == "timeout"
                assert waited < 2.0
                assert receive_until(first, TERMINAL_EVENTS)[-1]["code"] == "timeout"  # answered at its deadline
        finally:
            release.set()
            engine.generate = original
        assert wait_until(lambda: stats(client)["active"] == 0)
        assert (stats(client)["timed_out"], stats(client)["cancelled"]) == (2, 0)


def test_json_log_lines_carry_the_request_id_the_fields_and_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("info", "json")
    token = request_id.set("req-7")
    try:
        log = logging.getLogger("imagesense.task")
        log.info("task ask done", extra={"task": "ask", "prompt_tokens": 231})
        try:
            raise RuntimeError("boom")
        except RuntimeError as exc:
            log.error("task ask crashed", exc_info=exc)
    finally:
        request_id.reset(token)
        configure_logging("info", "text")
    done, crashed = (json.loads(line) for line in capsys.readouterr().err.strip().splitlines()[-2:])
    assert (done["request_id"], done["task"], done["prompt_tokens"], done["level"]) == ("req-7", "ask", 231, "INFO")
    assert crashed["level"] == "ERROR"
    assert "RuntimeError: boom" in crashed["traceback"]
