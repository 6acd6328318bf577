"""A bounded worker pool for blocking model work, consumed from asyncio.

At most ``max_concurrency`` jobs run at once, each on one of the pool's own threads (never the event loop
or the default threadpool); up to ``queue_size`` more wait, and the next one is refused with 429. Every
job knows its queue position, can be cancelled while waiting or running, has a deadline, and frees its
slot on every path. Events (queue position, start, output) reach the async side through the loop's
thread-safe ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from imagesense.errors import GenerationTimeout, JobCancelled, QueueFull
from imagesense.schemas.system import PoolStats

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Queued:
    position: int  # 1 = next to start


@dataclass(frozen=True)
class Started:
    queue_ms: float


@dataclass(frozen=True)
class Output:
    text: str


JobEvent = Queued | Started | Output
_FINISHED = object()


class JobContext:
    """What the work function sees on its worker thread."""

    def __init__(self, job: Job[object]) -> None:
        self._job = job

    def should_stop(self) -> bool:
        """True once the job is cancelled or past its deadline: generation checks it every token."""
        return self._job.cancel_requested.is_set() or time.monotonic() > self._job.deadline

    def emit(self, text: str) -> None:
        self._job.publish(Output(text))

    @property
    def queue_ms(self) -> float:
        started = self._job.started_at or time.monotonic()
        return (started - self._job.created) * 1000

    @property
    def elapsed_ms(self) -> float:
        return (time.monotonic() - self._job.created) * 1000


class Job(Generic[T]):
    def __init__(self, job_id: int, work: Callable[[JobContext], T], timeout_s: float) -> None:
        self.id = job_id
        self.work = work
        self.created = time.monotonic()
        self.deadline = self.created + timeout_s
        self.timeout_s = timeout_s
        self.cancel_requested = threading.Event()
        self.started_at: float | None = None
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
            assert isinstance(event, Queued | Started | Output)
            yield event

    async def result(self) -> T:
        """The job's return value; raises its error, JobCancelled, or GenerationTimeout at the deadline."""
        remaining = max(0.0, self.deadline - time.monotonic())
        try:
            return await asyncio.wait_for(asyncio.shield(self._future), timeout=remaining)
        except TimeoutError:
            self.timed_out = True
            self.cancel()
            raise GenerationTimeout(f"the request did not finish within {self.timeout_s:g} s") from None
        except asyncio.CancelledError:
            self.cancel()  # the awaiting client went away
            raise


class WorkerPool:
    def __init__(
        self,
        max_concurrency: int,
        queue_size: int,
        timeout_s: float,
        thread_initializer: Callable[[], None] | None = None,
    ) -> None:
        self.max_concurrency = max_concurrency
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self._cond = threading.Condition()
        self._ready: deque[Job[object]] = deque()  # given a slot, about to run
        self._waiting: deque[Job[object]] = deque()  # waiting for a slot
        self._running: set[Job[object]] = set()
        self._slots_taken = 0
        self._counts = {"completed": 0, "failed": 0, "cancelled": 0, "peak_active": 0}
        self._closed = False
        self._ids = itertools.count(1)
        self._initializer = thread_initializer
        self._threads = [
            threading.Thread(target=self._worker, name=f"imagesense-worker-{i}", daemon=True)
            for i in range(max_concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, work: Callable[[JobContext], T], timeout_s: float | None = None) -> Job[T]:
        """Queue ``work``; raises QueueFull (429) when every slot and queue place is taken."""
        job: Job[T] = Job(next(self._ids), work, timeout_s or self.timeout_s)
        job._on_cancel = self._cancel  # type: ignore[assignment]
        generic_job: Job[object] = job  # type: ignore[assignment]
        with self._cond:
            if self._closed:
                raise QueueFull("the service is shutting down", headers={"Retry-After": "5"})
            if self._slots_taken < self.max_concurrency:
                self._take_slot(generic_job)
            elif len(self._waiting) < self.queue_size:
                self._waiting.append(generic_job)
                job.publish(Queued(len(self._waiting)))
            else:
                raise QueueFull(
                    f"{self._slots_taken} requests are running and {len(self._waiting)} waiting "
                    f"(the queue holds {self.queue_size}); retry shortly",
                    headers={"Retry-After": str(self._retry_after_s())},
                )
        return job

    def _retry_after_s(self) -> int:
        return max(1, min(60, len(self._waiting) * 5))

    def _take_slot(self, job: Job[object]) -> None:
        self._slots_taken += 1
        self._counts["peak_active"] = max(self._counts["peak_active"], self._slots_taken)
        self._ready.append(job)
        self._cond.notify()

    def _cancel(self, job: Job[object]) -> None:
        with self._cond:
            if job not in self._waiting:
                return  # running (it stops itself) or finished
            self._waiting.remove(job)
            self._counts["cancelled"] += 1
            self._publish_positions()
        job.finish(None, JobCancelled())

    def _publish_positions(self) -> None:
        for position, job in enumerate(self._waiting, start=1):
            job.publish(Queued(position))

    def _worker(self) -> None:
        if self._initializer is not None:
            self._initializer()
        while True:
            with self._cond:
                while not self._ready and not self._closed:
                    self._cond.wait()
                if not self._ready:
                    return
                job = self._ready.popleft()
                self._running.add(job)
            try:
                outcome = self._run(job)
            finally:
                self._release_slot(job)
            # Settled after the slot is free: whoever gets the result can submit again at once.
            self._settle(job, *outcome)

    def _run(self, job: Job[object]) -> tuple[str, object, BaseException | None]:
        """Run the work; returns (outcome, result, error) for the job to be settled with."""
        result: object = None
        if not JobContext(job).should_stop():
            job.started_at = time.monotonic()
            job.publish(Started(queue_ms=(job.started_at - job.created) * 1000))
            try:
                result = job.work(JobContext(job))
            except BaseException as exc:  # noqa: BLE001 - every failure is the job's, never the worker's
                log.warning("job %d failed: %r", job.id, exc)
                return "failed", None, exc
        # A job stopped early ends as a timeout or a cancellation, whatever its work returned.
        if job.timed_out or time.monotonic() > job.deadline:
            return "failed", None, GenerationTimeout(f"the request did not finish within {job.timeout_s:g} s")
        if job.cancel_requested.is_set():
            return "cancelled", None, JobCancelled()
        return "completed", result, None

    def _settle(self, job: Job[object], outcome: str, result: object, error: BaseException | None) -> None:
        with self._cond:
            self._counts[outcome] += 1
        job.finish(result, error)

    def _release_slot(self, job: Job[object]) -> None:
        with self._cond:
            self._running.discard(job)
            self._slots_taken -= 1
            if self._waiting:
                self._take_slot(self._waiting.popleft())
                self._publish_positions()

    @property
    def active(self) -> int:
        return self._slots_taken  # a plain read: exact enough for sharing out threads

    def stats(self) -> PoolStats:
        with self._cond:
            return PoolStats(
                max_concurrency=self.max_concurrency,
                active=self._slots_taken,
                queued=len(self._waiting),
                queue_size=self.queue_size,
                **self._counts,
            )

    def shutdown(self) -> None:
        """Cancel everything, let running jobs stop at their next token, and join the threads."""
        with self._cond:
            self._closed = True
            pending = list(self._waiting) + list(self._ready)
            running = list(self._running)
            self._waiting.clear()
            self._ready.clear()
            self._cond.notify_all()
        for job in running:
            job.cancel_requested.set()
        for job in pending:
            job.cancel_requested.set()
            job.finish(None, JobCancelled())
        for thread in self._threads:
            thread.join(timeout=30)
