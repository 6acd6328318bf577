"""A submitted task as its consumers see it: events, a result, cancel — one pool job or a chain of two.

OCR with ``engine=auto`` is such a chain: the fast engine first, then the VLM when the fast result
is not good enough. The chain looks like one job to the HTTP endpoints and the WebSocket stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Generic, Protocol, TypeVar

from imagesense.engine.errors import EngineError
from imagesense.errors import ApiError
from imagesense.jobs import Job, JobCancelled, JobEvent, PoolError

T = TypeVar("T")
_FALLBACK_FAILURES = (ApiError, EngineError, PoolError)
T_co = TypeVar("T_co", covariant=True)


class TaskHandle(Protocol[T_co]):
    def events(self) -> AsyncIterator[JobEvent]: ...

    async def result(self) -> T_co: ...

    def cancel(self) -> None: ...


class FallbackHandle(Generic[T]):
    """Runs ``first``; ``then(result)`` may start a second job whose result replaces the first.

    If the second job can't run or fails (queue full, timeout, error), the first result stands: a
    fallback must never make an answer worse than having none.
    """

    def __init__(self, first: Job[T], then: Callable[[T], Job[T] | None]) -> None:
        self._current = first
        self._then = then
        self._events: asyncio.Queue[JobEvent | None] = asyncio.Queue()
        self._cancelled = False
        self._task = asyncio.create_task(self._drive(first))

    async def _follow(self, job: Job[T]) -> T:
        self._current = job
        async for event in job.events():
            self._events.put_nowait(event)
        return await job.result()

    async def _drive(self, first: Job[T]) -> T:
        try:
            result = await self._follow(first)
            if self._cancelled:
                raise JobCancelled
            try:
                second = self._then(result)
            except _FALLBACK_FAILURES:
                return result
            if second is None:
                return result
            with contextlib.suppress(*_FALLBACK_FAILURES):
                return await self._follow(second)
            return result
        finally:
            self._events.put_nowait(None)

    async def events(self) -> AsyncIterator[JobEvent]:
        while (event := await self._events.get()) is not None:
            yield event

    async def result(self) -> T:
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            self.cancel()  # the awaiting client went away
            raise

    def cancel(self) -> None:
        self._cancelled = True
        self._current.cancel()
