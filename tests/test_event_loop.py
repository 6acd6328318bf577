"""The event loop only routes: a slow shared store, a slow decode of another replica's upload or a slow
schema compile holds its own request, never /health or anyone else's."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from imagesense.devtools.loopback import RedisServer
from imagesense.shared_store import RedisBlobs
from support import image_bytes, service, upload

HOLD_S = 1.5  # how long the slow part takes
PROMPT_S = 0.1  # what /health may take meanwhile


@pytest.fixture
def replicas(tiny_checkpoint: Path, redis_server: RedisServer) -> Iterator[tuple[TestClient, TestClient]]:
    """Two replicas sharing the Redis store; no model (every request here is decided before the queue)."""
    with ExitStack() as stack:
        options = {"store": "redis", "redis_url": redis_server.url, "load_model": False, "fast_ocr": False}
        first, second = (stack.enter_context(service(tiny_checkpoint, **options)) for _ in range(2))
        yield first, second


def slowed(function: Callable[..., Any], started: threading.Event) -> Callable[..., Any]:
    def slow(*args: Any, **kwargs: Any) -> Any:
        started.set()
        time.sleep(HOLD_S)
        return function(*args, **kwargs)

    return slow


def health_while(client: TestClient, request: Callable[[], httpx.Response], started: threading.Event) -> float:
    """Seconds /health took while ``request`` (sent from another thread) was inside its slow part."""
    answers: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answers.append(request()))
    sender.start()
    assert started.wait(10), "the slow part never ran"
    began = time.monotonic()
    assert client.get("/api/v1/health").status_code == 200
    took = time.monotonic() - began
    sender.join(30)
    assert answers, "the slow request never answered"
    return took


def test_health_answers_while_a_redis_read_is_slow(
    replicas: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = replicas
    image_id = upload(first, image_bytes((320, 240), color="purple"))
    started = threading.Event()
    monkeypatch.setattr(RedisBlobs, "get", slowed(RedisBlobs.get, started))
    took = health_while(second, lambda: second.get(f"/api/v1/images/{image_id}"), started)
    assert took < PROMPT_S, f"/health took {took:.2f} s behind a Redis read"
    assert second.get(f"/api/v1/images/{image_id}").json()["width"] == 320  # the slow read still served


def test_health_answers_while_another_replicas_upload_is_decoded(
    replicas: tuple[TestClient, TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = replicas
    image_id = upload(first, image_bytes((300, 200), color="olive"))
    store = second.app.state.service.store  # type: ignore[attr-defined]
    started = threading.Event()
    monkeypatch.setattr(store, "_decode", slowed(store._decode, started))
    took = health_while(second, lambda: second.get(f"/api/v1/images/{image_id}"), started)
    assert took < PROMPT_S, f"/health took {took:.2f} s behind a decode"


def test_health_answers_while_a_schema_compiles(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    started = threading.Event()
    monkeypatch.setattr("imagesense.results.json_grammar", slowed(lambda *_: "", started))
    schema = {"type": "object", "properties": {"total": {"type": "number"}}}
    with service(tiny_checkpoint, load_model=False, fast_ocr=False) as client:
        image_id = upload(client)
        form = {"question": "Total?", "image_ids": [image_id], "json_schema": json.dumps(schema)}
        took = health_while(client, lambda: client.post("/api/v1/ask", data=form), started)
    assert took < PROMPT_S, f"/health took {took:.2f} s behind a schema compile"
