"""A real `imagesense serve` process on loopback, for tests that need a real server, socket and signal."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from imagesense.devtools.loopback import free_port


@dataclass
class LiveServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/api/v1/stream"

    def rss_mb(self, field: str = "VmRSS") -> float:
        """Resident memory now (VmRSS) or at its peak so far (VmHWM), in MB."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no {field}")


@contextmanager
def live_server(checkpoint: Path, log_dir: Path, **settings: Any) -> Iterator[LiveServer]:
    port = free_port()
    env = {
        **os.environ,
        "IMAGESENSE_MODEL": str(checkpoint),
        "IMAGESENSE_HOST": "127.0.0.1",
        "IMAGESENSE_PORT": str(port),
        "IMAGESENSE_WARMUP": "false",
        "IMAGESENSE_DTYPE": "float32",
        "IMAGESENSE_QUANTIZATION": "none",
        "IMAGESENSE_STATIC_DIR": "/nonexistent",
        **{f"IMAGESENSE_{name.upper()}": str(value) for name, value in settings.items()},
    }
    log = log_dir / f"server-{port}.log"
    command = [sys.executable, "-c", "from imagesense.cli import main; main()", "serve"]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    server = LiveServer(process, f"http://127.0.0.1:{port}", log)
    try:
        wait_until_loaded(server)
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def wait_until_loaded(server: LiveServer, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited:\n{server.log.read_text()[-3000:]}")
        try:
            body = httpx.get(f"{server.url}/api/v1/ready", timeout=2).json()
            if all(body[engine]["status"] != "loading" for engine in ("vlm", "fast_ocr")):
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"the server did not load:\n{server.log.read_text()[-3000:]}")
