"""Remote mode against upstreams that speak the protocol the way vLLM and llama-server do: their chunk
shapes and usage, their error bodies, a 429, a 503 while loading, a stream cut off mid-answer, and a
client that leaves (the upstream must see the connection close)."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from fake_upstream import FakeUpstream, fake_upstream
from support import receive_until, service, upload


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    with fake_upstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def remote(fake: FakeUpstream) -> Iterator[TestClient]:
    with service(
        Path("/nonexistent/none"), engine="remote", remote_url=fake.url, remote_model="fake", remote_api_key="k-123"
    ) as client:
        yield client


@pytest.fixture(autouse=True)
def normal(fake: FakeUpstream) -> None:
    fake.mode = "vllm"
    fake.requests.clear()
    fake.disconnected.clear()


def describe(client: TestClient, **data: object) -> tuple[int, dict[str, object], dict[str, str]]:
    image_id = upload(client)
    response = client.post("/api/v1/describe", data={"image_id": image_id, **data})
    return response.status_code, response.json(), dict(response.headers)


@pytest.mark.parametrize("mode", ["vllm", "llama"])
def test_chunks_and_usage_in_either_shape(remote: TestClient, fake: FakeUpstream, mode: str) -> None:
    fake.mode = mode
    status, body, _ = describe(remote, max_new_tokens=16)
    assert status == 200, body
    assert body["text"] == "A red square."
    assert body["finish_reason"] == "stop"
    usage = body["usage"]
    assert isinstance(usage, dict)
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (120, 3)
    assert usage["cached_tokens"] == (64 if mode == "vllm" else 0)


def test_what_is_sent_upstream(remote: TestClient, fake: FakeUpstream) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    fake.mode = "llama"
    image_id = upload(remote)
    data = {"image_ids": image_id, "question": "How many?", "json_schema": json.dumps(schema), "max_new_tokens": 9}
    assert remote.post("/api/v1/ask", data=data).status_code == 200
    [sent] = fake.requests
    assert fake.keys[-1] == "Bearer k-123"
    assert sent["model"] == "fake"
    assert sent["max_tokens"] == 9
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert sent["response_format"]["json_schema"]["schema"] == schema
    images = [part for message in sent["messages"] for part in message["content"] if part["type"] == "image_url"]
    [image] = images
    header, encoded = image["image_url"]["url"].split(",", 1)
    assert header == "data:image/png;base64"
    width, height = Image.open(io.BytesIO(base64.b64decode(encoded))).size
    assert width * height <= 768 * 768  # fitted to ask's pixel budget before it left


def test_a_429_is_our_429_with_its_retry_after(remote: TestClient, fake: FakeUpstream) -> None:
    fake.mode = "busy"
    status, body, headers = describe(remote)
    assert status == 429
    assert headers["retry-after"] == "7"
    assert "Too many requests" in str(body["error"])
    assert len(fake.requests) == 1  # not retried: it was received


def test_a_503_while_loading_is_our_503(remote: TestClient, fake: FakeUpstream) -> None:
    fake.mode = "loading"
    status, body, headers = describe(remote)
    assert status == 503
    assert "retry-after" in headers
    assert "Loading model" in str(body["error"])


def test_an_upstream_refusal_names_its_reason(remote: TestClient, fake: FakeUpstream) -> None:
    fake.mode = "invalid"
    status, body, _ = describe(remote)
    assert status == 422
    error = body["error"]
    assert isinstance(error, dict)
    assert "maximum context length" in error["message"]
    assert error["field"] == "messages"


def test_a_stream_cut_off_mid_answer_is_an_error_not_an_answer(remote: TestClient, fake: FakeUpstream) -> None:
    fake.mode = "cut"
    status, body, _ = describe(remote)
    assert status == 503
    assert "mid-answer" in str(body["error"])
    assert remote.get("/api/v1/stats").json()["active"] == 0
    fake.mode = "vllm"
    assert describe(remote)[0] == 200  # and the next one is fine


def test_a_client_that_leaves_closes_the_upstream_stream(remote: TestClient, fake: FakeUpstream) -> None:
    fake.mode = "slow"
    image_id = upload(remote)
    with remote.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps({"task": "describe", "image_ids": [image_id]}))
        receive_until(ws, {"token"})
        ws.send_text('{"type": "cancel"}')
        assert receive_until(ws, {"cancelled", "done", "error"})[-1]["type"] == "cancelled"
    assert fake.disconnected.wait(timeout=10)  # the upstream saw us go, long before its 60 s pause ended
