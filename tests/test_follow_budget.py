"""A conversation keeps the resolution it started with: at auto resolution, a question after a describe
reuses the describe's encoding (the prefix cache has it) instead of encoding the image again at ask's
larger budget; explicit resolutions get what they ask for; an estimate changes nothing."""

from __future__ import annotations

from fastapi.testclient import TestClient

from imagesense.budgets import AUTO_PIXELS, HIGH_PIXELS
from support import image_bytes, upload


def budget_of(body: dict[str, object]) -> int:
    [image] = body["images"]  # type: ignore[misc]
    budget: int = image["pixel_budget"]
    return budget


def photo(client: TestClient, shade: int) -> str:
    return upload(client, image_bytes((1280, 960), color=(shade, 120, 200)))


def test_a_question_after_a_describe_reuses_its_encoding(client: TestClient) -> None:
    image_id = photo(client, 11)
    described = client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2}).json()
    assert budget_of(described) == AUTO_PIXELS["describe"]
    asked = client.post("/api/v1/ask", data={"image_ids": image_id, "question": "What?", "max_new_tokens": 2}).json()
    assert budget_of(asked) == AUTO_PIXELS["describe"]  # not ask's own 768²
    image_tokens = asked["usage"]["image_tokens"]
    assert asked["usage"]["cached_tokens"] > image_tokens  # the image and the template before it: reused


def test_an_explicit_resolution_is_always_honoured(client: TestClient) -> None:
    image_id = photo(client, 22)
    client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2})
    form = {"image_ids": image_id, "question": "Small print?", "max_new_tokens": 2, "resolution": "high"}
    asked = client.post("/api/v1/ask", data=form).json()
    assert budget_of(asked) == HIGH_PIXELS
    assert asked["usage"]["cached_tokens"] == 0


def test_the_first_task_sets_the_budget_and_an_estimate_does_not(client: TestClient) -> None:
    image_id = photo(client, 33)
    estimate = client.post("/api/v1/estimate", data={"task": "ask", "image_ids": image_id}).json()
    assert estimate["images"][0]["pixel_budget"] == AUTO_PIXELS["ask"]
    asked = client.post("/api/v1/ask", data={"image_ids": image_id, "question": "What?", "max_new_tokens": 2}).json()
    assert budget_of(asked) == AUTO_PIXELS["ask"]
    described = client.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2}).json()
    assert budget_of(described) == AUTO_PIXELS["ask"]  # reuses the question's encoding
    assert described["usage"]["cached_tokens"] > 0
    ocr = client.post("/api/v1/ocr", data={"image_id": image_id, "engine": "vlm", "max_new_tokens": 2}).json()
    assert budget_of(ocr) == AUTO_PIXELS["ocr"]  # reading text is not a conversation: its own budget
