"""A submitted task as its consumers see it: events, a result, cancel — one pool job or a chain of two.

OCR with ``engine=auto`` is such a chain: the fast engine first, then the VLM when the fast result
is not good enough. The chain looks like one job to the HTTP endpoints and the WebSocket stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Protocol, TypeVar

from imagesense.jobs import Job, JobCancelled, JobEvent, Output, Reset
from imagesense.schemas.tasks import AnyTaskResult

log = logging.getLogger(__name__)
T_co = TypeVar("T_co", covariant=True)


class TaskHandle(Protocol[T_co]):
    def events(self) -> AsyncIterator[JobEvent]: ...

    async def result(self) -> T_co: ...

    def cancel(self) -> None: ...


class FallbackHandle:
    """Runs ``first``; ``then(result)`` may start a second job whose result replaces the first.

    If the second job can't run or fails in any way (refused, timed out, crashed), the first result
    stands: a fallback never makes an answer worse than having none. A client that cancels gets a
    cancellation, as for any task. What a streaming client assembles always equals the final text: a
    ``Reset`` comes before the second job's first words, and again, with the first text, when the second
    job fails after it had spoken.
    """

    def __init__(self, first: Job[AnyTaskResult], then: Callable[[AnyTaskResult], Job[AnyTaskResult] | None]) -> None:
        self._current = first
        self._then = then
        self._events: asyncio.Queue[JobEvent | None] = asyncio.Queue()
        self._cancelled = False
        self._task = asyncio.create_task(self._drive(first))

    async def _follow(self, job: Job[AnyTaskResult], replaces_text: bool = False) -> AnyTaskResult:
        self._current = job
        async for event in job.events():
            if replaces_text and isinstance(event, Output):
                self._events.put_nowait(Reset())
                replaces_text = False
            self._events.put_nowait(event)
        return await job.result()

    async def _drive(self, first: Job[AnyTaskResult]) -> AnyTaskResult:
        try:
            result = await self._follow(first)
            if self._cancelled:
                raise JobCancelled
            try:
                second = self._then(result)
            except Exception as exc:  # noqa: BLE001 - whatever keeps the fallback from starting
                log.info("auto OCR: the VLM fallback could not start (%s); the fast result stands", exc)
                return result
            if second is None:
                return result
            return await self._fall_back(second, result)
        finally:
            self._events.put_nowait(None)

    async def _fall_back(self, second: Job[AnyTaskResult], first_result: AnyTaskResult) -> AnyTaskResult:
        try:
            return await self._follow(second, replaces_text=True)
        except JobCancelled:
            raise
        except Exception as exc:
            log.warning("auto OCR: the VLM fallback failed; the fast result stands", exc_info=exc)
        if second.started_at is not None:  # it may have spoken: tell the client to start over
            self._events.put_nowait(Reset())
            self._events.put_nowait(Output(first_result.text))
        return first_result

    async def events(self) -> AsyncIterator[JobEvent]:
        while (event := await self._events.get()) is not None:
            yield event

    async def result(self) -> AnyTaskResult:
        try:
            return await asyncio.shield(self._task)
        except asyncio.CancelledError:
            self.cancel()  # the awaiting client went away
            raise

    def cancel(self) -> None:
        self._cancelled = True
        self._current.cancel()
