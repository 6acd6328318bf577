"""A job of the worker pool as both sides see it: the worker thread (``JobContext``) and the async consumer
(``Job``: events, result, cancel), and how a job can end other than with a result."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


class PoolError(Exception):
    """The pool could not run the job; ``errors.py`` maps each kind to an API error."""


class QueueFull(PoolError):
    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PoolClosed(QueueFull):
    """The service is shutting down: nothing new is taken."""


class JobTimedOut(PoolError):
    pass


class JobCancelled(Exception):
    """The job was stopped before its end: by its client (nobody is left to answer), or by a shutdown."""

    def __init__(self, by_shutdown: bool = False) -> None:
        super().__init__("stopped by a shutdown" if by_shutdown else "cancelled by the client")
        self.by_shutdown = by_shutdown


@dataclass(frozen=True)
class Queued:
    position: int  # 1 = next to start


@dataclass(frozen=True)
class Started:
    queue_ms: float


@dataclass(frozen=True)
class Output:
    text: str


@dataclass(frozen=True)
class Reset:
    """Forget the text so far: what follows replaces it (auto OCR's fallback)."""


@dataclass(frozen=True)
class Progress:
    """A document task has finished ``done`` of its ``total`` pages."""

    done: int
    total: int


JobEvent = Queued | Started | Output | Reset | Progress
_FINISHED = object()


class JobContext:
    """What the work function sees on its worker thread."""

    def __init__(self, job: Job[object]) -> None:
        self._job = job

    def should_stop(self) -> bool:
        """True once the job is cancelled or past its deadline: engines check it every layer and token."""
        return self._job.cancel_requested.is_set() or time.monotonic() > self._job.deadline

    def emit(self, text: str) -> None:
        self._job.publish(Output(text))

    def progress(self, done: int, total: int) -> None:
        self._job.publish(Progress(done, total))

    @property
    def queue_ms(self) -> float:
        started = self._job.started_at or time.monotonic()
        return (started - self._job.created) * 1000

    @property
    def elapsed_ms(self) -> float:
        return (time.monotonic() - self._job.created) * 1000


class Job(Generic[T]):
    def __init__(self, job_id: int, work: Callable[[JobContext], T], deadline: float, client: str = "") -> None:
        self.id = job_id
        self.client = client  # whose job: the queue serves clients in turn
        self.work = work
        self.created = time.monotonic()
        self.deadline = deadline  # time.monotonic() by which it must be done, queue time included
        self.cancel_requested = threading.Event()
        self.stopped_by_shutdown = False
        self.started_at: float | None = None
        self.returned_at: float | None = None  # when the work returned (a worker thread writes it)
        self.timed_out = False
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[T] = self._loop.create_future()
        # The future is awaited through a shield, so it may end with nobody awaiting it any more:
        # retrieving its exception here keeps asyncio from reporting it as lost.
        self._future.add_done_callback(lambda future: future.cancelled() or future.exception())
        self._events: asyncio.Queue[object] = asyncio.Queue()
        self._on_cancel: Callable[[Job[T]], None] = lambda _job: None

    def publish(self, event: object) -> None:
        """Thread-safe: hand an event to the async consumer."""
        self._call_in_loop(self._events.put_nowait, event)

    def _call_in_loop(self, callback: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is listening any more
            self._loop.call_soon_threadsafe(callback, *args)

    def finish(self, result: T | None, error: BaseException | None) -> None:
        def settle() -> None:
            if not self._future.done():
                if error is None:
                    self._future.set_result(result)  # type: ignore[arg-type]
                else:
                    self._future.set_exception(error)
            self._events.put_nowait(_FINISHED)

        self._call_in_loop(settle)

    def add_done_callback(self, callback: Callable[[], object]) -> None:
        """Run ``callback`` on the event loop once the job is settled, however it ended."""
        self._future.add_done_callback(lambda _future: callback())

    def cancel(self) -> None:
        """Stop the job: dropped from the queue if waiting, stopped within a token if running."""
        self.cancel_requested.set()
        self._on_cancel(self)

    async def events(self) -> AsyncIterator[JobEvent]:
        """Queue positions, start and output, until the job ends."""
        while True:
            event = await self._events.get()
            if event is _FINISHED:
                return
            assert isinstance(event, Queued | Started | Output | Reset | Progress)
            yield event

    def timeout_error(self) -> JobTimedOut:
        return JobTimedOut(f"the request did not finish within {round(self.deadline - self.created, 1):g} s")

    async def result(self) -> T:
        """The job's return value; raises its error, JobCancelled, or JobTimedOut at the deadline (the
        pool settles a job at its deadline, queued or running)."""
        try:
            return await asyncio.shield(self._future)
        except asyncio.CancelledError:
            self.cancel()  # the awaiting client went away
            raise
