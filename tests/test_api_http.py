"""The HTTP API on the tiny model: every endpoint and its typed result."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from support import image_bytes, service, upload


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/api/v1/health").json() == {"status": "ok"}
    ready = client.get("/api/v1/ready")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True
    assert ready.json()["vlm"]["status"] == "ready"


def test_upload_is_content_addressed(client: TestClient) -> None:
    data = image_bytes((300, 200), "JPEG", color="navy")
    first = client.post("/api/v1/images", files={"file": ("a.jpg", data, "image/jpeg")})
    second = client.post("/api/v1/images", files={"file": ("renamed.jpg", data, "image/jpeg")})
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert first.json() | {"image_id": "x"} == {
        "image_id": "x", "width": 300, "height": 200, "format": "jpeg", "bytes": len(data)
    }  # fmt: skip
    other = upload(client, image_bytes((300, 200), "JPEG", color="olive"))
    assert other != first.json()["image_id"]


def test_get_and_delete_image(client: TestClient) -> None:
    image_id = upload(client, image_bytes((50, 40)))
    assert client.get(f"/api/v1/images/{image_id}").json()["width"] == 50
    assert client.delete(f"/api/v1/images/{image_id}").status_code == 204
    missing = client.get(f"/api/v1/images/{image_id}")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert client.delete(f"/api/v1/images/{image_id}").status_code == 404


def assert_typed_result(body: dict[str, object], task: str, max_new_tokens: int) -> None:
    assert body["task"] == task
    assert isinstance(body["text"], str)
    assert body["text"]
    assert body["finish_reason"] in {"stop", "length", "repetition"}
    usage = body["usage"]
    assert isinstance(usage, dict)
    assert 0 < usage["completion_tokens"] <= max_new_tokens
    assert usage["prompt_tokens"] > usage["image_tokens"] > 0
    timings = body["timings"]
    assert isinstance(timings, dict)
    assert set(timings) == {"queue_ms", "prefill_ms", "decode_ms", "total_ms"}
    assert timings["total_ms"] >= timings["prefill_ms"] > 0


def test_ocr_with_an_upload(client: TestClient) -> None:
    response = client.post(
        "/api/v1/ocr",
        files={"file": ("doc.png", image_bytes((640, 480)), "image/png")},
        data={"max_new_tokens": 12, "engine": "vlm"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_typed_result(body, "ocr", 12)
    [image] = body["images"]
    assert image["visual_tokens"] == body["usage"]["image_tokens"] == 300  # 640×480 fits the OCR budget
    assert body["engine"] == "vlm"
    assert body["lines"] == []


def test_describe_with_a_stored_image_and_detail(client: TestClient) -> None:
    image_id = upload(client, image_bytes((800, 600), color="teal"))
    brief = client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 8}).json()
    detailed = client.post(
        "/api/v1/describe", data={"image_id": image_id, "detail": "detailed", "max_new_tokens": 8}
    ).json()
    assert_typed_result(brief, "describe", 8)
    assert detailed["usage"]["prompt_tokens"] > brief["usage"]["prompt_tokens"]  # the longer instruction


def test_describe_is_deterministic_by_default(client: TestClient) -> None:
    image_id = upload(client, image_bytes((256, 256), color="orange"))
    texts = {client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 10}).json()["text"]}
    texts.add(client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 10}).json()["text"])
    assert len(texts) == 1


def test_resolution_and_max_pixels_change_the_visual_tokens(client: TestClient) -> None:
    image_id = upload(client, image_bytes((1280, 960), color="gray"))

    def tokens(**form: object) -> int:
        body = client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 1, **form}).json()
        assert body["images"][0]["visual_tokens"] == body["usage"]["image_tokens"]
        count: int = body["usage"]["image_tokens"]
        return count

    assert tokens() == 192  # describe's own budget: 448² px
    assert tokens(resolution="low") == 192
    assert tokens(resolution="high") == 1200  # the whole 1280×960
    assert tokens(max_pixels=64 * 1024) == 54  # 288×192: the largest 32-px grid within 64 Ki px
    ocr = client.post("/api/v1/ocr", data={"image_id": image_id, "max_new_tokens": 1, "engine": "vlm"}).json()
    assert ocr["usage"]["image_tokens"] == 972  # OCR's budget: 1024² px -> 1152×864


def test_ask_with_several_images_and_history(client: TestClient) -> None:
    first, second = upload(client, image_bytes(color="red")), upload(client, image_bytes(color="blue"))
    history = [{"role": "user", "content": "Compare them."}, {"role": "assistant", "content": "One is red."}]
    response = client.post(
        "/api/v1/ask",
        data={
            "question": "And the other?",
            "image_ids": [first, second],
            "history": json.dumps(history),
            "max_new_tokens": 6,
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert_typed_result(body, "ask", 6)
    assert [image["image_id"] for image in body["images"]] == [first, second]
    single = client.post("/api/v1/ask", data={"question": "?", "image_ids": [first], "max_new_tokens": 6}).json()
    assert body["usage"]["image_tokens"] == 2 * single["usage"]["image_tokens"]


def test_ask_with_uploaded_files(client: TestClient) -> None:
    files = [("files", (f"{i}.png", image_bytes(color=color), "image/png")) for i, color in enumerate(["red", "lime"])]
    response = client.post("/api/v1/ask", data={"question": "Differences?", "max_new_tokens": 4}, files=files)
    assert response.status_code == 200, response.text
    assert len(response.json()["images"]) == 2


def test_stats_count_the_work(client: TestClient) -> None:
    before = client.get("/api/v1/stats").json()
    image_id = upload(client, image_bytes(color="olive"))
    assert client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2}).status_code == 200
    assert client.post("/api/v1/ocr", data={"image_id": image_id, "engine": "fast"}).status_code == 200
    stats = client.get("/api/v1/stats").json()
    assert stats["max_concurrency"] == 2
    assert stats["queue_size"] == 8
    assert stats["active"] == 0
    assert stats["queued"] == 0
    assert stats["completed"] == before["completed"] + 1
    assert stats["fast_ocr"]["completed"] == before["fast_ocr"]["completed"] + 1
    assert stats["failed"] == before["failed"]
    assert 1 <= stats["peak_active"] <= 2


def test_openapi_is_fully_typed(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    ocr = spec["paths"]["/api/v1/ocr"]["post"]
    assert ocr["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OcrResult"
    }
    assert ocr["responses"]["413"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorResponse")
    assert {"/api/v1/images", "/api/v1/describe", "/api/v1/ask", "/api/v1/stats"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 200


def test_service_starts_without_a_model_and_says_how_to_fix_it(tmp_path: Path) -> None:
    with service(tmp_path / "no-such-checkpoint") as unready:
        ready = unready.get("/api/v1/ready")
        assert ready.status_code == 200  # the fast OCR engine needs no download
        assert ready.json()["fast_ocr"]["status"] == "ready"
        state = ready.json()["vlm"]
        assert state["status"] == "failed"
        assert "IMAGESENSE_MODEL" in state["reason"]
        assert unready.get("/api/v1/ready", params={"engine": "vlm"}).status_code == 503
        assert unready.get("/api/v1/health").status_code == 200
        image_id = upload(unready)  # uploads still work
        response = unready.post("/api/v1/describe", data={"image_id": image_id})
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_unavailable"
        assert "IMAGESENSE_MODEL" in response.json()["error"]["message"]
