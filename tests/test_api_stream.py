"""The WebSocket stream and the pool seen through the API: order of events, cancel, disconnect, limits."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from imagesense.engine.protocol import GenerationRequest, GenerationResult, VisionLanguageEngine
from imagesense.errors import ClientGone
from imagesense.schemas.tasks import TaskOptions
from imagesense.service import TaskService, TaskSpec
from support import TERMINAL_EVENTS, image_bytes, receive_until, run_request, service, stats, upload, wait_until

LONG = 4000  # tokens: long enough to still be running when the test acts


@pytest.fixture(scope="module")
def single(tiny_checkpoint: Path) -> Iterator[TestClient]:
    """One worker and a queue of one: every limit is one request away."""
    with service(
        tiny_checkpoint, max_concurrency=1, queue_size=1, repetition_guard=False, max_new_tokens_limit=LONG
    ) as test_client:
        yield test_client


def test_events_arrive_in_order_and_add_up_to_the_result(client: TestClient) -> None:
    image_id = upload(client, image_bytes(color="yellow"))
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(run_request([image_id], "describe", max_new_tokens=12))
        events = receive_until(ws, TERMINAL_EVENTS)
    types = [event["type"] for event in events]
    assert types[0] == "started"
    assert types[-1] == "done"
    assert set(types[1:-1]) == {"token"}
    streamed = "".join(event["text"] for event in events if event["type"] == "token")
    result = events[-1]["result"]
    assert streamed == result["text"]
    assert result["usage"]["completion_tokens"] == 12
    # The same typed result as HTTP, for the same request.
    http = client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 12}).json()
    assert http["text"] == result["text"]
    assert http.keys() == result.keys()


@pytest.mark.parametrize("task", ["ocr", "describe", "ask"])
def test_every_task_streams(client: TestClient, task: str) -> None:
    image_id = upload(client)
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(run_request([image_id], task, max_new_tokens=3))
        assert receive_until(ws, TERMINAL_EVENTS)[-1]["result"]["task"] == task


def test_the_socket_serves_several_tasks_in_turn(client: TestClient) -> None:
    image_id = upload(client)
    with client.websocket_connect("/api/v1/stream") as ws:
        for _ in range(2):
            ws.send_text(run_request([image_id], max_new_tokens=2))
            assert receive_until(ws, TERMINAL_EVENTS)[-1]["type"] == "done"


def test_ask_with_history_over_the_socket(client: TestClient) -> None:
    image_id = upload(client)
    message = {
        "task": "ask",
        "image_ids": [image_id],
        "question": "And now?",
        "history": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}],
        "options": {"max_new_tokens": 3},
    }
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps(message))
        assert receive_until(ws, TERMINAL_EVENTS)[-1]["type"] == "done"


@pytest.mark.parametrize(
    ("message", "code", "field"),
    [
        ("not json", "validation_error", None),
        ({"task": "paint", "image_ids": ["x"]}, "validation_error", "task"),
        ({"task": "ocr", "image_ids": []}, "validation_error", "image_ids"),
        ({"task": "ocr", "image_ids": ["f" * 32]}, "not_found", "image_ids"),
        ({"task": "ask", "image_ids": "IMAGE"}, "validation_error", "question"),
        (
            {"task": "ocr", "image_ids": "IMAGE", "options": {"max_new_tokens": 10**6}},
            "validation_error",
            "max_new_tokens",
        ),
    ],
)
def test_bad_requests_get_an_error_event_and_the_socket_stays_open(
    client: TestClient, message: Any, code: str, field: str | None
) -> None:
    image_id = upload(client)
    raw = message if isinstance(message, str) else json.dumps(message).replace('"IMAGE"', json.dumps([image_id]))
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(raw)
        [error] = receive_until(ws, TERMINAL_EVENTS)
        assert error["type"] == "error"
        assert error["code"] == code
        if field:
            assert error["field"] == field
        ws.send_text(run_request([image_id], max_new_tokens=1))
        assert receive_until(ws, TERMINAL_EVENTS)[-1]["type"] == "done"


def test_cancel_while_running_frees_the_slot(single: TestClient) -> None:
    image_id = upload(single)
    before = stats(single)["cancelled"]
    costs = single.app.state.service.costs  # type: ignore[attr-defined]
    learnt = costs.observations
    with single.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(run_request([image_id], "describe", max_new_tokens=LONG))
        receive_until(ws, {"token"})
        ws.send_text(json.dumps({"type": "cancel"}))
        events = receive_until(ws, TERMINAL_EVENTS)
        assert events[-1]["type"] == "cancelled"
        tokens = sum(event["type"] == "token" for event in events)
        assert tokens < LONG - 100
    assert wait_until(lambda: stats(single)["active"] == 0)
    assert stats(single)["cancelled"] == before + 1
    assert costs.observations == learnt  # a cut generation would make decoding look cheap: not learnt from
    # The freed slot serves the next request at once.
    assert single.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2}).status_code == 200
    assert costs.observations == learnt + 1


def test_cancel_while_queued_and_queue_full_429(single: TestClient) -> None:
    image_id = upload(single)
    with single.websocket_connect("/api/v1/stream") as running, single.websocket_connect("/api/v1/stream") as queued:
        running.send_text(run_request([image_id], "describe", max_new_tokens=LONG))
        receive_until(running, {"token"})
        queued.send_text(run_request([image_id], "describe", max_new_tokens=LONG))
        assert receive_until(queued, {"queued"})[-1] == {"type": "queued", "position": 1}
        assert stats(single)["queued"] == 1

        refused = single.post("/api/v1/describe", data={"image_id": image_id})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "queue_full"
        assert int(refused.headers["Retry-After"]) >= 1

        queued.send_text(json.dumps({"type": "cancel"}))
        assert receive_until(queued, TERMINAL_EVENTS)[-1]["type"] == "cancelled"
        assert stats(single)["queued"] == 0
        running.send_text(json.dumps({"type": "cancel"}))
        assert receive_until(running, TERMINAL_EVENTS)[-1]["type"] == "cancelled"
    assert wait_until(lambda: stats(single)["active"] == 0)


def test_closing_the_socket_cancels_within_a_token(single: TestClient) -> None:
    image_id = upload(single)
    before = stats(single)["cancelled"]
    with single.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(run_request([image_id], "describe", max_new_tokens=LONG))
        receive_until(ws, {"token"})
    assert wait_until(lambda: stats(single)["active"] == 0, timeout_s=2.0)
    assert stats(single)["cancelled"] == before + 1


def test_a_second_task_on_a_busy_socket_is_refused(single: TestClient) -> None:
    image_id = upload(single)
    with single.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(run_request([image_id], "describe", max_new_tokens=LONG))
        receive_until(ws, {"token"})
        ws.send_text(run_request([image_id], "describe"))
        assert receive_until(ws, {"error"})[-1]["code"] == "busy"
        ws.send_text(json.dumps({"type": "cancel"}))
        assert receive_until(ws, TERMINAL_EVENTS)[-1]["type"] == "cancelled"


def count_concurrency(engine: VisionLanguageEngine) -> tuple[Callable[[], int], Callable[[], None]]:
    """Wrap the engine to record how many generations run at once."""
    original = engine.generate
    lock, state = threading.Lock(), {"now": 0, "peak": 0}

    def counted(request: GenerationRequest, *args: Any, **kwargs: Any) -> GenerationResult:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        try:
            return original(request, *args, **kwargs)
        finally:
            with lock:
                state["now"] -= 1

    engine.generate = counted  # type: ignore[method-assign]
    return (lambda: state["peak"]), (lambda: setattr(engine, "generate", original))


def test_concurrency_never_exceeds_the_cap(client: TestClient) -> None:
    service_: TaskService = client.app.state.service  # type: ignore[attr-defined]
    peak, restore = count_concurrency(service_.engines.vlm.get())
    image_id = upload(client)
    sockets = [client.websocket_connect("/api/v1/stream") for _ in range(6)]
    try:
        for ws in sockets:
            ws.__enter__()
            ws.send_text(run_request([image_id], "describe", max_new_tokens=200))
        results = [receive_until(ws, TERMINAL_EVENTS) for ws in sockets]
    finally:
        for ws in sockets:
            ws.__exit__(None, None, None)
        restore()
    assert all(events[-1]["type"] == "done" for events in results)
    assert sum(any(e["type"] == "queued" for e in events) for events in results) >= 3
    assert peak() == 2
    assert stats(client)["peak_active"] == 2


def test_http_client_that_disconnects_cancels_its_job(single: TestClient) -> None:
    service_: TaskService = single.app.state.service  # type: ignore[attr-defined]
    image = service_.store.get("addr:testclient", upload(single))  # TestClient's address, no keys
    spec = TaskSpec("describe", [image], TaskOptions(max_new_tokens=LONG), client="addr:testclient")
    calls = {"n": 0}

    async def disconnects_after_a_while() -> bool:
        calls["n"] += 1
        return calls["n"] > 2

    before = stats(single)["cancelled"]
    with pytest.raises(ClientGone):
        single.portal.call(service_.complete, spec, disconnects_after_a_while)  # type: ignore[union-attr]
    assert wait_until(lambda: stats(single)["active"] == 0)
    assert stats(single)["cancelled"] == before + 1
