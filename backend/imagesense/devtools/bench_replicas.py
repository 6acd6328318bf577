"""`imagesense bench-replicas`: throughput of one replica vs several under the same bounded load.

Starts a Redis server (Debian's redis-server) and N `imagesense serve` processes on loopback sharing it
(IMAGESENSE_STORE=redis), uploads a set of distinct images through one replica, then sends the same fixed
number of requests — describe on the tiny test checkpoint (or --checkpoint), and fast OCR of a receipt —
from a few concurrent clients, each request to the replica its image hashes to (as the balancer does).
It prints requests per second for each replica count and the ratio to one replica. Everything stops by
itself: a fixed request count, loopback only.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
from PIL import Image

from imagesense.devtools.checkpoint import cached_checkpoint
from imagesense.devtools.loopback import RedisServer, free_port
from imagesense.devtools.samples import sample

IMAGES = 12
CLIENTS = 4


@contextmanager
def replica(checkpoint: Path, redis_url: str, log: Path) -> Iterator[str]:
    port = free_port()
    env = os.environ | {
        "IMAGESENSE_MODEL": str(checkpoint),
        "IMAGESENSE_PORT": str(port),
        "IMAGESENSE_STORE": "redis",
        "IMAGESENSE_REDIS_URL": redis_url,
        "IMAGESENSE_STATIC_DIR": "/nonexistent",
        "IMAGESENSE_LOG_LEVEL": "warning",
    }
    with log.open("wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "imagesense", "serve"], env=env, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/v1/ready?engine=vlm", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None:
                raise SystemExit(f"a replica exited:\n{log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=60)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def route(urls: list[str], image_id: str) -> str:
    return urls[int(hashlib.sha256(image_id.encode()).hexdigest(), 16) % len(urls)]


def throughput(urls: list[str], requests: int, task: str, image_ids: list[str], new_tokens: int) -> float:
    """Requests per second for ``requests`` requests from CLIENTS concurrent clients."""

    def send(index: int) -> None:
        image_id = image_ids[index % len(image_ids)]
        form = {"image_id": image_id, "max_new_tokens": str(new_tokens)}
        if task == "ocr":
            form = {"image_id": image_id, "engine": "fast"}
        response = httpx.post(f"{route(urls, image_id)}/api/v1/{task}", data=form, timeout=600)
        response.raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as clients:
        list(clients.map(send, range(requests)))
    return requests / (time.perf_counter() - started)


def main(checkpoint: str | None, counts: list[int], requests: int, new_tokens: int) -> None:
    model = Path(checkpoint) if checkpoint else cached_checkpoint(Path(".cache"), "tiny")
    print(f"{os.cpu_count()} cores; model {model}; {requests} requests per task from {CLIENTS} clients\n")
    rates: dict[str, dict[int, float]] = {"describe": {}, "ocr": {}}
    with tempfile.TemporaryDirectory() as scratch, RedisServer(Path(scratch)) as redis:
        for count in counts:
            with ExitStack() as stack:
                logs = [Path(scratch) / f"replica-{count}-{n}.log" for n in range(count)]
                urls = [stack.enter_context(replica(model, redis.url, log)) for log in logs]
                describe_ids = [upload(urls[0], Image.new("RGB", (448, 448), (n * 20, 90, 160))) for n in range(IMAGES)]
                receipt = sample("receipt").image
                ocr_ids = [upload(urls[0], receipt.rotate(0.1 * n, fillcolor="white")) for n in range(IMAGES)]
                throughput(urls, len(urls) * 2, "describe", describe_ids, new_tokens)  # warm every replica
                rates["describe"][count] = throughput(urls, requests, "describe", describe_ids, new_tokens)
                rates["ocr"][count] = throughput(urls, requests, "ocr", ocr_ids, new_tokens)
    print(f"{'task':<10}{'replicas':>10}{'requests/s':>12}{'× one':>8}")
    for task, by_count in rates.items():
        for count, rate in by_count.items():
            print(f"{task:<10}{count:>10}{rate:>12.2f}{rate / by_count[counts[0]]:>8.2f}")


def upload(url: str, image: Image.Image) -> str:
    response = httpx.post(f"{url}/api/v1/images", files={"file": ("i.png", png(image), "image/png")}, timeout=60)
    response.raise_for_status()
    image_id: str = response.json()["image_id"]
    return image_id
