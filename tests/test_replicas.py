"""Two replicas sharing a real Redis server (Debian's redis-server, started here): an upload through one
is usable, and deletable, through the other; with Redis stopped, clear 503s and no crash; when it
returns, everything works again."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from imagesense.devtools.loopback import RedisServer
from imagesense.devtools.sample_pdf import MIXED, build_pdf
from imagesense.devtools.samples import sample
from imagesense.shared_store import TOTAL, RedisBlobs
from support import image_bytes, service, upload


@pytest.fixture(scope="module")
def replicas(tiny_checkpoint: Path, redis_server: RedisServer) -> Iterator[tuple[TestClient, TestClient]]:
    with ExitStack() as stack:
        first, second = (
            stack.enter_context(service(tiny_checkpoint, store="redis", redis_url=redis_server.url)) for _ in range(2)
        )
        yield first, second


def test_upload_through_one_ask_through_the_other(replicas: tuple[TestClient, TestClient]) -> None:
    first, second = replicas
    image_id = upload(first, image_bytes((320, 240), color="teal"))
    info = second.get(f"/api/v1/images/{image_id}")
    assert info.status_code == 200
    assert (info.json()["width"], info.json()["height"]) == (320, 240)
    asked = second.post("/api/v1/ask", data={"image_ids": image_id, "question": "Colour?", "max_new_tokens": 3})
    assert asked.status_code == 200, asked.text


def test_delete_through_either_is_seen_by_both(replicas: tuple[TestClient, TestClient]) -> None:
    first, second = replicas
    image_id = upload(first, image_bytes((200, 100), color="navy"))
    assert second.get(f"/api/v1/images/{image_id}").status_code == 200  # now cached by the second too
    assert second.delete(f"/api/v1/images/{image_id}").status_code == 204
    assert first.get(f"/api/v1/images/{image_id}").status_code == 404
    assert second.get(f"/api/v1/images/{image_id}").status_code == 404
    gone = first.post("/api/v1/describe", data={"image_id": image_id, "max_new_tokens": 2})
    assert gone.status_code == 404


def test_a_document_uploaded_through_one_is_read_through_the_other(replicas: tuple[TestClient, TestClient]) -> None:
    first, second = replicas
    uploaded = first.post("/api/v1/documents", files={"file": ("d.pdf", build_pdf(MIXED), "application/pdf")})
    assert uploaded.status_code == 201
    document_id = uploaded.json()["document_id"]
    assert second.get(f"/api/v1/documents/{document_id}").json() == uploaded.json()
    read = second.post("/api/v1/ocr", data={"document_id": document_id, "pages": "1"})
    assert read.status_code == 200, read.text
    assert read.json()["pages"][0]["text"] == MIXED[0].text


def test_redis_down_is_a_clear_503_and_recovers(
    replicas: tuple[TestClient, TestClient], redis_server: RedisServer
) -> None:
    first, second = replicas
    kept = upload(first, image_bytes((64, 64), color="olive"))
    redis_server.stop()
    try:
        refused = first.post(
            "/api/v1/images", files={"file": ("i.png", image_bytes((90, 60), color="plum"), "image/png")}
        )
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "5"
        error = refused.json()["error"]
        assert error["code"] == "store_unavailable"
        assert "redis://127.0.0.1" in error["message"]
        assert second.get(f"/api/v1/images/{kept}").status_code == 503  # can't tell whether it was deleted
        ready = first.get("/api/v1/ready").json()
        assert ready["store"]["status"] == "failed"
        assert first.get("/api/v1/health").status_code == 200
        fast = first.post("/api/v1/ocr", data={"engine": "fast"}, files={"file": ("r.png", receipt())})
        assert fast.status_code == 503  # an upload can't be kept: refused, not half-done
    finally:
        redis_server.start()
    assert first.get("/api/v1/ready").json()["store"]["status"] == "ready"
    again = upload(first, image_bytes((90, 60), color="plum"))
    assert second.get(f"/api/v1/images/{again}").status_code == 200
    assert first.get("/api/v1/stats").json()["active"] == 0


def receipt() -> bytes:
    buffer = io.BytesIO()
    sample("receipt").image.save(buffer, "PNG")
    return buffer.getvalue()


def test_a_read_keeps_a_shared_blob_alive_and_counted(redis_server: RedisServer) -> None:
    """A blob read after its upload lives a TTL from the read, and its bytes stay in the byte count that
    eviction keeps under the budget (its age renewed with its TTL)."""
    url = redis_server.url.removesuffix("/0") + "/1"  # a database of its own: the replicas' keys stay out
    blobs = RedisBlobs(url, ttl_s=2, max_bytes=10_000)
    redis.Redis.from_url(url).flushdb()
    blobs.put("kept", b"k" * 100)
    time.sleep(1.2)
    assert blobs.get("kept") == b"k" * 100  # renews it ...
    time.sleep(1.2)  # ... past its first TTL
    blobs.put("new", b"n" * 300)  # an eviction pass
    assert blobs.exists("kept")
    assert int(redis.Redis.from_url(url).get(TOTAL) or 0) == 400  # both still counted
