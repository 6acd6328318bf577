"""A shared deployment: API keys, tenancy that follows the key, browser-origin safety, metrics."""

from __future__ import annotations

import contextlib
import json
import math
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import WebSocketDenialResponse

from imagesense.auth import ApiKeys
from imagesense.main import max_json_request_bytes, max_request_bytes
from imagesense.middleware import KeyGate
from imagesense.schemas.openai_compat import MAX_JSON_CONTAINERS
from imagesense.settings import Settings
from live import live_server
from support import TERMINAL_EVENTS, image_bytes, receive_until, run_request, service

ALICE, BOB = "alice-key-0123456789abcdef", "bob-key-0123456789abcdef"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def keyed(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    key_file = tmp_path_factory.mktemp("keys") / "keys"
    key_file.write_text(f"# the team's keys\nbob:{BOB}\n")
    with service(
        tiny_checkpoint, api_keys=[f"alice:{ALICE}"], api_keys_file=key_file, repetition_guard=False
    ) as client:
        yield client


def denial(client: TestClient, **connect: Any) -> WebSocketDenialResponse:
    """The HTTP answer given instead of the stream's upgrade."""
    try:
        with client.websocket_connect("/api/v1/stream", **connect):
            pass
    except WebSocketDenialResponse as refused:
        return refused
    raise AssertionError("the upgrade was accepted")


def upload_as(client: TestClient, key: str, data: bytes) -> str:
    response = client.post("/api/v1/images", files={"file": ("a.png", data, "image/png")}, headers=auth(key))
    assert response.status_code == 201, response.text
    image_id: str = response.json()["image_id"]
    return image_id


def test_without_a_right_key_every_api_route_is_401(keyed: TestClient) -> None:
    for headers in ({}, auth("not-a-key"), {"Authorization": f"Basic {ALICE}"}):
        for method, path in [("POST", "/api/v1/images"), ("POST", "/api/v1/describe"), ("GET", "/api/v1/stats")]:
            response = keyed.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized"
    assert keyed.get("/api/v1/stats", headers=auth(ALICE)).status_code == 200
    assert keyed.get("/api/v1/stats", headers=auth(BOB)).status_code == 200  # from the key file


def test_health_and_ready_stay_open_but_ready_says_nothing_sensitive(keyed: TestClient) -> None:
    assert keyed.get("/api/v1/health").status_code == 200
    anonymous = keyed.get("/api/v1/ready")
    assert anonymous.status_code == 200
    assert anonymous.json()["vlm"]["status"] == "ready"
    assert anonymous.json()["vlm"]["model"] is None
    assert keyed.get("/api/v1/ready", headers=auth(ALICE)).json()["vlm"]["model"] is not None


def test_the_stream_authenticates_before_the_upgrade(keyed: TestClient) -> None:
    image_id = upload_as(keyed, ALICE, image_bytes(color="gold"))
    refused = denial(keyed)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert denial(keyed, subprotocols=["imagesense", "bearer.wrong"]).status_code == 401
    with keyed.websocket_connect("/api/v1/stream", subprotocols=["imagesense", f"bearer.{ALICE}"]) as ws:
        assert ws.accepted_subprotocol == "imagesense"  # never the one carrying the key
        ws.send_text(run_request([image_id], "describe", max_new_tokens=3))
        assert receive_until(ws, TERMINAL_EVENTS)[-1]["type"] == "done"


def test_one_key_cannot_see_use_or_delete_anothers_image_nor_learn_of_its_prefix(keyed: TestClient) -> None:
    data = image_bytes((320, 256), color="indigo")
    image_id = upload_as(keyed, ALICE, data)
    assert keyed.get(f"/api/v1/images/{image_id}", headers=auth(BOB)).status_code == 404
    assert keyed.delete(f"/api/v1/images/{image_id}", headers=auth(BOB)).status_code == 404
    form = {"image_id": image_id, "max_new_tokens": 2}
    assert keyed.post("/api/v1/describe", data=form, headers=auth(BOB)).status_code == 404
    with keyed.websocket_connect("/api/v1/stream", subprotocols=["imagesense", f"bearer.{BOB}"]) as ws:
        ws.send_text(run_request([image_id], "describe"))
        assert receive_until(ws, TERMINAL_EVENTS)[-1]["code"] == "not_found"

    def ask(key: str) -> dict[str, Any]:
        answer: dict[str, Any] = keyed.post(
            "/api/v1/ask", data={"image_ids": [image_id], "question": "What?", "max_new_tokens": 2}, headers=auth(key)
        ).json()
        return answer

    ask(ALICE)
    assert ask(ALICE)["usage"]["cached_tokens"] > 0  # her own prefix is reused
    assert upload_as(keyed, BOB, data) == image_id  # the same bytes: the same id, but Bob's own image
    assert ask(BOB)["usage"]["cached_tokens"] == 0  # nothing of Alice's shows through
    assert keyed.get(f"/api/v1/images/{image_id}", headers=auth(ALICE)).status_code == 200
    assert keyed.delete(f"/api/v1/images/{image_id}", headers=auth(ALICE)).status_code == 204
    assert keyed.get(f"/api/v1/images/{image_id}", headers=auth(BOB)).status_code == 200  # his copy stays


def test_metrics_need_a_key_and_every_name_moves_after_a_request(keyed: TestClient) -> None:
    assert keyed.get("/metrics").status_code == 401

    def scrape() -> dict[str, float]:
        response = keyed.get("/metrics", headers=auth(ALICE))
        assert response.status_code == 200
        samples: dict[str, float] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                key = sample.name + json.dumps(sample.labels, sort_keys=True)
                samples[key] = samples.get(key, 0.0) + sample.value
        return samples

    def total(samples: dict[str, float], name: str) -> float:
        return sum(value for key, value in samples.items() if key.startswith(name + "{"))

    before = scrape()
    image_id = upload_as(keyed, ALICE, image_bytes(color="salmon"))
    for _ in range(2):
        form = {"image_ids": [image_id], "question": "Why?", "max_new_tokens": 3}
        assert keyed.post("/api/v1/ask", data=form, headers=auth(ALICE)).status_code == 200
    after = scrape()
    moving = [
        "imagesense_requests_total", "imagesense_time_to_first_token_seconds_count",
        "imagesense_request_queue_seconds_count", "imagesense_request_prefill_seconds_count",
        "imagesense_request_decode_seconds_count", "imagesense_prompt_tokens_total",
        "imagesense_generation_tokens_total", "imagesense_image_tokens_total",
        "imagesense_prefix_cache_hits_total", "imagesense_prefix_cache_queries_total",
        "imagesense_http_requests_total",
    ]  # fmt: skip
    for name in moving:
        assert total(after, name) > total(before, name), name
    assert after['imagesense_requests_total{"engine": "vlm", "status": "200", "task": "ask"}'] >= 2
    for name in ("imagesense_requests_running", "imagesense_requests_waiting"):
        assert {f'{name}{{"pool": "vlm"}}', f'{name}{{"pool": "fast_ocr"}}'} <= set(after)
    assert after['imagesense_model_ready{"engine": "vlm"}'] == 1.0


@pytest.fixture(scope="module")
def open_service(tiny_checkpoint: Path) -> Iterator[TestClient]:
    """No keys (one person's machine), one other origin allowed."""
    with service(tiny_checkpoint, cors_origins=["https://app.example"]) as client:
        yield client


def test_a_rebinding_host_gets_400(open_service: TestClient) -> None:
    response = open_service.get("/api/v1/health", headers={"Host": "attacker.example"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bad_host"
    assert open_service.get("/api/v1/health").status_code == 200


def test_a_foreign_origin_is_refused_on_the_stream(open_service: TestClient) -> None:
    assert denial(open_service, headers={"Origin": "https://evil.example"}).status_code == 403
    for origin in ("http://testserver", "https://app.example"):  # the same origin, and an allowed one
        with open_service.websocket_connect("/api/v1/stream", headers={"Origin": origin}) as ws:
            ws.send_text(json.dumps({"type": "cancel"}))


def test_cross_site_state_changes_are_refused_without_keys(open_service: TestClient) -> None:
    files = {"file": ("a.png", image_bytes(), "image/png")}
    for headers in ({"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
        refused = open_service.post("/api/v1/images", files=files, headers=headers)
        assert refused.status_code == 403, headers
        assert refused.json()["error"]["code"] == "forbidden"
    assert open_service.get("/api/v1/stats", headers={"Origin": "https://evil.example"}).status_code == 200  # reads
    assert open_service.post("/api/v1/images", files=files).status_code == 201  # curl, SDKs: no Origin
    assert open_service.post("/api/v1/images", files=files, headers={"Origin": "http://testserver"}).status_code == 201


def test_a_metrics_key_alone_guards_metrics(tiny_checkpoint: Path) -> None:
    scraper = "scraper-key-0123456789abcdef"
    with service(tiny_checkpoint, metrics_key=scraper, fast_ocr=False) as client:
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=auth("scraper-key-wrong-0123456")).status_code == 401
        assert client.get("/metrics", headers=auth(scraper)).status_code == 200
        assert client.get("/api/v1/stats").status_code == 200  # no API keys: the API itself stays open


def test_a_body_without_a_right_key_is_refused_before_it_is_parsed(keyed: TestClient) -> None:
    """Malformed bodies show it: without a key they get 401, not the 400 or 422 of a parse."""
    json_body = {"Content-Type": "application/json"}
    for headers in ({}, auth("not-a-key")):
        chat = keyed.post("/v1/chat/completions", content=b"{", headers={**headers, **json_body})
        assert chat.status_code == 401, chat.text
        assert chat.json()["error"]["type"] == "authentication_error"  # /v1 keeps OpenAI's envelope
        form_body = {**headers, "Content-Type": "multipart/form-data"}
        form = keyed.post("/api/v1/ask", content=b"--x\r\nnot a form", headers=form_body)
        assert form.status_code == 401
        assert form.json()["error"]["code"] == "unauthorized"
    keyed_chat = keyed.post(
        "/v1/chat/completions", content=b"{", headers={**auth(ALICE), "Content-Type": "application/json"}
    )
    assert keyed_chat.status_code == 400  # with a key, the body is read: and it is bad


async def test_the_key_gate_answers_without_reading_the_body() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app was reached")

    async def receive() -> dict[str, Any]:
        raise AssertionError("the body was read")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    gate = KeyGate(app, ApiKeys(["alice:sk-test-0123456789"]))
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "headers": [(b"content-length", b"85000000")],
    }
    await gate(scope, receive, send)
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 401


def test_a_v1_body_with_too_many_objects_is_refused_before_it_is_parsed(keyed: TestClient) -> None:
    headers = {**auth(ALICE), "Content-Type": "application/json"}
    nested = b"[" + b"{}," * (MAX_JSON_CONTAINERS + 1) + b"{}]"  # 300 KB: ~6 MB of objects per 100,000
    response = keyed.post("/v1/chat/completions", content=nested, headers=headers)
    assert response.status_code == 413, response.text
    assert f"over {MAX_JSON_CONTAINERS} objects and arrays" in response.json()["error"]["message"]
    assert response.json()["error"]["type"] == "invalid_request_error"
    form = keyed.post("/api/v1/ask", content=nested, headers={**auth(ALICE), "Content-Type": "multipart/form-data"})
    assert form.status_code != 413  # forms have no JSON to count: the limit is /v1's


def test_v1_takes_its_images_in_base64_up_to_the_byte_limit_and_not_past_it() -> None:
    settings = Settings(load_model=False)
    base64_images = settings.max_images_per_request * math.ceil(settings.max_upload_bytes * 4 / 3)
    assert max_json_request_bytes(settings) > base64_images > max_request_bytes(settings)
    assert max_json_request_bytes(settings) - base64_images < 2 * 1024 * 1024  # the text, not a second image


def test_a_keyless_80_mib_post_gets_401_without_the_server_growing(tiny_checkpoint: Path, tmp_path: Path) -> None:
    with live_server(
        tiny_checkpoint, tmp_path, api_keys=json.dumps([f"alice:{ALICE}"]), load_model="false", fast_ocr="false"
    ) as server:
        before = server.rss_mb()
        host, port = server.url.removeprefix("http://").split(":")
        size = 80 * 1024 * 1024
        with socket.create_connection((host, int(port)), timeout=10) as connection:
            connection.sendall(
                f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {size}\r\n\r\n".encode()
            )
            chunk, sent = b"{}," * 350_000, 0
            with contextlib.suppress(OSError):  # the server answers and closes before taking it all
                while sent < size:
                    sent += connection.send(chunk[: size - sent])
            answer = connection.recv(65536).decode("latin-1")
        peak = server.rss_mb("VmHWM")
    assert answer.startswith("HTTP/1.1 401"), answer[:200]
    assert peak - before < 50, f"the server grew from {before:.0f} MB to a peak of {peak:.0f} MB"
