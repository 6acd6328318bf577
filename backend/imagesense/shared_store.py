"""Uploads shared by every replica: the uploaded bytes in Redis, content-addressed, with a TTL and a
byte budget (oldest out first). Each replica keeps its decoded copies in its own memory store; Redis
is what makes an upload through one replica usable — and deletable — through any other."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import ParamSpec, Protocol, TypeVar
from urllib.parse import urlsplit

import redis

from imagesense.errors import ApiError

log = logging.getLogger(__name__)
PREFIX = "imagesense:"
SIZES, AGES = f"{PREFIX}sizes", f"{PREFIX}ages"  # bytes per key; keys by time written (oldest evicted first)
TOTAL = f"{PREFIX}bytes"


class StoreUnavailable(ApiError):
    status, code = 503, "store_unavailable"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"Retry-After": "5"})


P = ParamSpec("P")
R = TypeVar("R")


class BlockingCalls:
    """Runs a store's blocking calls (shared-store I/O, the decode of a shared image) on a bounded
    executor made in the lifespan, never on the event loop; without an executor (no shared store: every
    call is a dictionary lookup) they run in place."""

    def __init__(self, executor: Executor | None) -> None:
        self._executor = executor

    async def run(self, function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if self._executor is None:
            return function(*args, **kwargs)
        call = functools.partial(function, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._executor, call)


class SharedBlobs(Protocol):
    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> bool: ...

    def problem(self) -> str | None:
        """None while the store answers; otherwise what is wrong (for /ready)."""
        ...


class RedisBlobs:
    def __init__(self, url: str, ttl_s: int, max_bytes: int) -> None:
        parts = urlsplit(url)
        self._where = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}"  # never the password
        self._ttl_s = ttl_s
        self._max_bytes = max_bytes
        # Short timeouts: a request waits at most ~1 s on a Redis that is gone, then gets a 503.
        self._redis = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0)

    def put(self, key: str, data: bytes) -> None:
        with self._answers():
            with self._redis.pipeline() as pipe:
                pipe.set(PREFIX + key, data, ex=self._ttl_s)
                pipe.hget(SIZES, key)
                pipe.hset(SIZES, key, len(data))
                pipe.zadd(AGES, {key: time.time()})
                _, old_size, *_ = pipe.execute()
            self._redis.incrby(TOTAL, len(data) - int(old_size or 0))
            self._evict()

    def get(self, key: str) -> bytes | None:
        with self._answers():
            found = self._redis.get(PREFIX + key)
            if found is not None:  # in use: kept as long as after an upload, and counted as new
                with self._redis.pipeline() as pipe:
                    pipe.expire(PREFIX + key, self._ttl_s)
                    # The age renews with the TTL, else the next eviction would take this live key for an
                    # expired one and drop its bytes from the count (and it would leave the byte budget).
                    pipe.zadd(AGES, {key: time.time()}, xx=True)
                    pipe.execute()
            return found if isinstance(found, bytes) else None

    def exists(self, key: str) -> bool:
        with self._answers():
            return bool(self._redis.exists(PREFIX + key))

    def delete(self, key: str) -> bool:
        with self._answers():
            removed = bool(self._redis.delete(PREFIX + key))
            self._forget([key])
            return removed

    def problem(self) -> str | None:
        try:
            self._redis.ping()
        except redis.RedisError as error:
            return f"the shared store ({self._where}) does not answer: {type(error).__name__}"
        return None

    def _evict(self) -> None:
        """Oldest first while over the byte budget; keys past their TTL are gone already, only counted."""
        expired = self._redis.zrangebyscore(AGES, "-inf", time.time() - self._ttl_s)
        self._forget([_text(key) for key in expired])
        while int(self._redis.get(TOTAL) or 0) > self._max_bytes:
            oldest = self._redis.zpopmin(AGES)
            if not oldest:
                break
            key = _text(oldest[0][0])
            self._redis.delete(PREFIX + key)
            self._forget([key])

    def _forget(self, keys: list[str]) -> None:
        if not keys:
            return
        sizes = self._redis.hmget(SIZES, keys)
        with self._redis.pipeline() as pipe:
            pipe.hdel(SIZES, *keys)
            pipe.zrem(AGES, *keys)
            pipe.decrby(TOTAL, sum(int(size or 0) for size in sizes))
            pipe.execute()

    @contextmanager
    def _answers(self) -> Iterator[None]:
        try:
            yield
        except redis.RedisError as error:
            log.warning("shared store %s: %s", self._where, error)
            raise StoreUnavailable(f"the shared store ({self._where}) does not answer; try again shortly") from error


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
