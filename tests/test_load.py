"""Load on loopback, bounded in count and time: every request is answered, the cap holds, the slots come
back, and memory stays bounded. Each test prints the figures it measured (pytest -s shows them)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from PIL import Image

from live import LiveServer, live_server

CLIENTS, REQUESTS = 40, 200
SESSIONS = 60


@pytest.fixture(scope="module")
def server(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with live_server(
        tiny_checkpoint,
        tmp_path_factory.mktemp("load"),
        max_concurrency=2,
        queue_size=8,
        repetition_guard="false",
        log_level="warning",
    ) as running:
        yield running


def png(color: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (256, 192), color).save(buffer, "PNG")
    return buffer.getvalue()


def stats(server: LiveServer) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/api/v1/stats").json()
    return body


async def watch_active(server: LiveServer, stop: asyncio.Event, seen: list[int]) -> None:
    async with httpx.AsyncClient(base_url=server.url) as client:
        while not stop.is_set():
            seen.append((await client.get("/api/v1/stats")).json()["active"])
            await asyncio.sleep(0.02)


def test_200_requests_from_40_clients_are_each_answered_and_the_cap_holds(server: LiveServer) -> None:
    image_id = httpx.post(f"{server.url}/api/v1/images", files={"file": ("a.png", png("teal"))}).json()["image_id"]
    before, rss_before = stats(server), server.rss_mb()
    answers: list[httpx.Response] = []

    async def one_client(client: httpx.AsyncClient, count: int) -> None:
        for _ in range(count):
            form = {"image_id": image_id, "max_new_tokens": str(random.randint(2, 12))}
            answers.append(await client.post("/api/v1/describe", data=form))

    async def load() -> list[int]:
        stop, active = asyncio.Event(), []
        watcher = asyncio.create_task(watch_active(server, stop, active))
        limits = httpx.Limits(max_connections=CLIENTS + 1)
        async with httpx.AsyncClient(base_url=server.url, timeout=120, limits=limits) as client:
            await asyncio.gather(*(one_client(client, REQUESTS // CLIENTS) for _ in range(CLIENTS)))
        stop.set()
        await watcher
        return active

    began = time.monotonic()
    active = asyncio.run(asyncio.wait_for(load(), timeout=300))
    elapsed = time.monotonic() - began
    statuses = Counter(response.status_code for response in answers)
    after = stats(server)
    print(f"\nload: {REQUESTS} requests from {CLIENTS} clients in {elapsed:.1f} s: {dict(statuses)}; "
          f"most running at once {max(active)}; RSS {rss_before:.0f} -> {server.rss_mb():.0f} MB")  # fmt: skip
    assert len(answers) == REQUESTS
    assert set(statuses) <= {200, 429}
    assert all(int(r.headers["Retry-After"]) >= 1 for r in answers if r.status_code == 429)
    assert statuses[200] == after["completed"] - before["completed"]  # every accepted one ran: none lost
    assert max(active) <= 2
    assert after["peak_active"] <= 2
    assert (after["active"], after["queued"]) == (0, 0)
    assert server.rss_mb() - rss_before < 300


def test_60_stream_sessions_with_a_third_dropped_mid_stream_leave_the_pool_idle(server: LiveServer) -> None:
    image_id = httpx.post(f"{server.url}/api/v1/images", files={"file": ("b.png", png("plum"))}).json()["image_id"]
    request = json.dumps({"task": "describe", "image_ids": [image_id], "options": {"max_new_tokens": 48}})
    endings: list[str] = []

    async def session(index: int) -> None:
        """One user: sends the task and, told the queue is full, tries again shortly (a bounded number of
        times); every third leaves in the middle of its stream."""
        async with websockets.connect(server.ws_url) as ws:
            for _attempt in range(200):
                await ws.send(request)
                async for raw in ws:
                    event = json.loads(raw)
                    if index % 3 == 0 and event["type"] == "token":
                        endings.append("dropped")
                        return  # the client leaves mid-stream: the socket closes
                    if event["type"] in ("done", "error", "cancelled"):
                        break
                if event.get("code") != "queue_full":
                    endings.append(event.get("code", event["type"]))
                    return
                await asyncio.sleep(random.uniform(0.05, 0.3))
            endings.append("gave up")

    async def run_all() -> None:
        await asyncio.gather(*(session(index) for index in range(SESSIONS)))

    began = time.monotonic()
    asyncio.run(asyncio.wait_for(run_all(), timeout=300))
    last_client = time.monotonic()
    while stats(server)["active"] or stats(server)["queued"]:
        assert time.monotonic() - last_client < 3.0, "the pool is not idle 3 s after the last client"
        time.sleep(0.05)
    idle_after = time.monotonic() - last_client
    counts = Counter(endings)
    print(
        f"\nstream: {SESSIONS} sessions in {last_client - began:.1f} s: {dict(counts)}; idle {idle_after:.2f} s after"
    )
    assert len(endings) == SESSIONS
    assert counts == {"dropped": SESSIONS // 3, "done": SESSIONS - SESSIONS // 3}


def garbage(rng: random.Random, index: int) -> tuple[str, bytes, str]:
    valid = png("white")
    kinds = [
        ("random.png", rng.randbytes(rng.randint(0, 4096)), "image/png"),
        ("truncated.png", valid[: rng.randint(8, len(valid) - 1)], "image/png"),
        ("text.jpg", b"hello, I am not a JPEG" * rng.randint(1, 50), "image/jpeg"),
        ("empty.gif", b"", "image/gif"),
        ("header-only.png", valid[:33] + rng.randbytes(64), "image/png"),
        ("zip.tiff", b"PK\x03\x04" + rng.randbytes(512), "image/tiff"),
    ]
    return kinds[index % len(kinds)]


def test_150_garbage_uploads_are_all_refused_with_4xx(server: LiveServer) -> None:
    rng = random.Random(7)
    rss_before = server.rss_mb()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        statuses = Counter(
            client.post(path, files={"file": garbage(rng, index)}).status_code
            for index in range(150)
            for path in [("/api/v1/images", "/api/v1/ocr", "/api/v1/describe")[index % 3]]
        )
    print(f"\ngarbage: 150 uploads: {dict(statuses)}; RSS {rss_before:.0f} -> {server.rss_mb():.0f} MB")
    assert sum(statuses.values()) == 150
    assert all(400 <= status < 500 for status in statuses)
    assert server.process.poll() is None
    assert os.path.exists(f"/proc/{server.process.pid}")
