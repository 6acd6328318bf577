"""Every bad input gets a 4xx in the one error shape, naming the field and the limit."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from imagesense.schemas.tasks import (
    MAX_HISTORY_CHARS,
    MAX_HISTORY_TURNS,
    MAX_QUESTION_CHARS,
    MAX_TEMPERATURE,
    MIN_PIXEL_BUDGET,
)
from support import TERMINAL_EVENTS, image_bytes, receive_until, service, upload, wait_until


@pytest.fixture(scope="module")
def strict(tiny_checkpoint: Path) -> Iterator[TestClient]:
    """Small limits so that each can be crossed cheaply."""
    with service(
        tiny_checkpoint,
        max_upload_bytes=200_000,
        max_image_pixels=1_000_000,
        max_images_per_request=2,
        max_new_tokens_limit=64,
        vision_max_pixels=512 * 512,
    ) as test_client:
        yield test_client


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert {"code", "message"} <= set(body["error"])
    error: dict[str, Any] = body["error"]
    return error


def post_file(client: TestClient, data: bytes, path: str = "/api/v1/images") -> Any:
    return client.post(path, files={"file": ("upload.bin", data, "application/octet-stream")})


def test_empty_body(strict: TestClient) -> None:
    error = error_of(post_file(strict, b""), 400)
    assert error["field"] == "file"
    assert "empty" in error["message"]


def test_not_an_image(strict: TestClient) -> None:
    error = error_of(post_file(strict, b"GIF89a? no, plain text"), 415)
    assert error["code"] == "unsupported_media_type"
    assert error["field"] == "file"


def test_truncated_image(strict: TestClient) -> None:
    data = image_bytes((300, 300), "JPEG", color="purple")
    error = error_of(post_file(strict, data[: len(data) // 2]), 400)
    assert error["code"] == "invalid_image"
    assert "truncated" in error["message"]


def test_file_over_the_byte_limit(strict: TestClient) -> None:
    data = image_bytes((400, 400), "BMP")  # 480 KB
    error = error_of(post_file(strict, data), 413)
    assert error["field"] == "file"
    assert "200000 bytes" in error["message"]


def test_image_over_the_pixel_limit_is_refused_before_decoding(strict: TestClient) -> None:
    buffer = io.BytesIO()
    Image.new("1", (5000, 5000)).save(buffer, "PNG")  # tiny file, 25 MP
    error = error_of(post_file(strict, buffer.getvalue()), 413)
    assert "1000000 pixels" in error["message"]


def test_too_many_images(strict: TestClient) -> None:
    ids = [upload(strict, image_bytes(color=color)) for color in ("red", "green", "blue")]
    error = error_of(strict.post("/api/v1/ask", data={"question": "?", "image_ids": ids}), 422)
    assert error["field"] == "image_ids"  # the field the images came in
    assert "limit is 2" in error["message"]
    files = [("files", (f"{n}.png", image_bytes(color="red"), "image/png")) for n in range(3)]
    error = error_of(strict.post("/api/v1/ask", data={"question": "?"}, files=files), 422)
    assert error["field"] == "files"
    assert "limit is 2" in error["message"]


def test_no_image_at_all(strict: TestClient) -> None:
    error_of(strict.post("/api/v1/ask", data={"question": "?"}), 422)
    assert error_of(strict.post("/api/v1/ocr", data={}), 422)["field"] == "file"


def test_both_file_and_image_id(strict: TestClient) -> None:
    image_id = upload(strict)
    response = strict.post(
        "/api/v1/describe", data={"image_id": image_id}, files={"file": ("a.png", image_bytes(), "image/png")}
    )
    assert error_of(response, 422)["field"] == "file"


def test_unknown_image_id(strict: TestClient) -> None:
    error = error_of(strict.post("/api/v1/ocr", data={"image_id": "0" * 32}), 404)
    assert error["field"] == "image_id"


@pytest.mark.parametrize(
    ("form", "field", "fragment"),
    [
        ({"max_new_tokens": 65}, "max_new_tokens", "limit is 64"),
        ({"max_new_tokens": 0}, "max_new_tokens", "greater than or equal to 1"),
        ({"max_pixels": 600 * 600}, "max_pixels", "limit is 262144"),
        ({"max_pixels": 100}, "max_pixels", "greater than or equal to 4096"),
        ({"resolution": "ultra"}, "resolution", "low"),
        ({"temperature": 3}, "temperature", "less than or equal to 2"),
        ({"detail": "verbose"}, "detail", "brief"),
    ],
)
def test_bad_options_name_the_field_and_limit(
    strict: TestClient, form: dict[str, Any], field: str, fragment: str
) -> None:
    image_id = upload(strict)
    error = error_of(strict.post("/api/v1/describe", data={"image_id": image_id, **form}), 422)
    assert error["field"] == field
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("history", "fragment"),
    [
        ("not json", "JSON list"),
        (json.dumps([{"role": "system", "content": "x"}]), "JSON list"),
        (json.dumps([{"role": "assistant", "content": "x"}, {"role": "user", "content": "y"}]), "alternate"),
        (json.dumps([{"role": "user", "content": "x"}]), "end with an assistant"),
    ],
)
def test_bad_history(strict: TestClient, history: str, fragment: str) -> None:
    image_id = upload(strict)
    response = strict.post("/api/v1/ask", data={"question": "?", "image_ids": [image_id], "history": history})
    error = error_of(response, 422)
    assert error["field"] == "history"
    assert fragment in error["message"]


def test_missing_question(strict: TestClient) -> None:
    image_id = upload(strict)
    assert error_of(strict.post("/api/v1/ask", data={"image_ids": [image_id]}), 422)["field"] == "question"


def test_unknown_route_and_method_use_the_same_shape(strict: TestClient) -> None:
    assert error_of(strict.get("/api/v1/nope"), 404)["code"] == "not_found"
    assert error_of(strict.get("/api/v1/ocr"), 405)["code"] == "method_not_allowed"


def test_timeout_is_504(tiny_checkpoint: Path) -> None:
    with service(tiny_checkpoint, job_timeout_s=0.3, repetition_guard=False) as slow:
        image_id = upload(slow)
        response = slow.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2048})
        error = error_of(response, 504)
        assert error["code"] == "timeout"
        assert "0.3 s" in error["message"]
        assert wait_until(lambda: slow.get("/api/v1/stats").json()["active"] == 0)
        stats = slow.get("/api/v1/stats").json()
        assert (stats["timed_out"], stats["failed"], stats["cancelled"]) == (1, 0, 0)  # a timeout has its own count


def turns(count: int, chars: int = 8) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[index % 2], "content": "x" * chars} for index in range(count)]


@pytest.mark.parametrize(
    ("case", "fields"),
    [
        ("question too long", {"question": "x" * (MAX_QUESTION_CHARS + 1)}),
        ("blank question", {"question": "   "}),
        ("temperature", {"question": "?", "temperature": MAX_TEMPERATURE + 1}),
        ("max_pixels", {"question": "?", "max_pixels": MIN_PIXEL_BUDGET - 1}),
        ("too many images", {"question": "?", "image_ids": 5}),
        ("history turns", {"question": "?", "history": turns(MAX_HISTORY_TURNS + 2)}),
        ("history characters", {"question": "?", "history": turns(4, MAX_HISTORY_CHARS // 4 + 1)}),
        ("history order", {"question": "?", "history": turns(3)}),
    ],
)
def test_the_same_bad_input_gets_the_same_422_over_http_and_the_stream(
    client: TestClient, case: str, fields: dict[str, Any]
) -> None:
    """Every bound lives once, on the public models, and both transports enforce it the same way."""
    image_id = upload(client)
    image_ids = [image_id] * fields.pop("image_ids", 1)
    options = {key: fields.pop(key) for key in ("temperature", "max_pixels") if key in fields}
    form = {**fields, **options, "image_ids": image_ids}
    if "history" in form:
        form["history"] = json.dumps(form["history"])
    http = error_of(client.post("/api/v1/ask", data=form), 422)
    with client.websocket_connect("/api/v1/stream") as ws:
        ws.send_text(json.dumps({"task": "ask", "image_ids": image_ids, "options": options, **fields}))
        [event] = receive_until(ws, TERMINAL_EVENTS)
    assert event["type"] == "error", case
    # On the stream the options sit in an "options" object, and the field says so.
    field, message = event["field"].removeprefix("options."), event["message"].removeprefix("options.")
    assert (event["code"], field) == (http["code"], http["field"]), case
    if "history" in fields:  # the form's history is a JSON string: its message says so around the same words
        assert message in http["message"], case
    else:
        assert message == http["message"], case


def test_with_the_web_app_mounted_api_paths_never_fall_to_it(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text("<html>app</html>")
    with service(tmp_path / "no-model", static_dir=tmp_path, fast_ocr=False) as client:
        assert client.get("/some/route/of/the/app").text == "<html>app</html>"
        wrong_method = client.get("/api/v1/ask")
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error"]["code"] == "method_not_allowed"
        assert wrong_method.headers["allow"] == "POST"
        assert client.put("/api/v1/images/" + "0" * 32).headers["allow"] == "DELETE, GET, HEAD"
        for method in ("GET", "POST"):
            missing = client.request(method, "/api/v1/no-such-thing")
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "not_found"
        assert client.post("/some/route/of/the/app").status_code == 405
