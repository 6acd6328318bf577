from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from imagesense.devtools.checkpoint import cached_checkpoint
from imagesense.devtools.loopback import RedisServer
from imagesense.engine.native import NativeKernels
from imagesense.settings import Settings
from support import service

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    """The random-weight tiny Qwen3-VL checkpoint, built once and cached until its builder changes."""
    return cached_checkpoint(Path(os.environ.get("IMAGESENSE_TEST_CACHE", REPO / ".cache")), "tiny")


@pytest.fixture(scope="session")
def native_kernels() -> NativeKernels:
    """IMAGESENSE_NATIVE_KERNELS as the service reads it (auto unless set): `.ci/test`'s kernels-off leg
    sets it to off, so the engine tests that load a model directly take the PyTorch path there too."""
    return Settings().native_kernels


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real Redis on loopback for one test module (Debian's redis-server)."""
    if shutil.which("redis-server") is None:
        pytest.fail("these tests need a real Redis server: apt-get install redis-server (.ci/run does)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(tiny_checkpoint: Path) -> Iterator[TestClient]:
    """A service on the tiny model with the default pool (2 workers, queue of 8)."""
    with service(tiny_checkpoint, repetition_guard=False) as test_client:
        yield test_client
