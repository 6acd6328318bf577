"""A bounded worker pool for blocking model work, consumed from asyncio.

At most ``max_concurrency`` jobs run at once, each on one of the pool's own threads (never the event loop
or the default threadpool); up to ``queue_size`` more wait, and the next one is refused (QueueFull). Every
job knows its queue position, can be cancelled while waiting or running, has a deadline, and frees its
slot on every path. Events (queue position, start, output) reach the async side through the loop's
thread-safe ``call_soon_threadsafe``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from imagesense.jobs import Job, JobCancelled, JobContext, JobTimedOut, PoolClosed, Queued, QueueFull, Started

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class PoolCounts:
    max_concurrency: int
    active: int  # jobs holding a slot
    queued: int  # jobs waiting for one
    queue_size: int
    completed: int
    failed: int
    cancelled: int
    peak_active: int


class WorkerPool:
    def __init__(
        self,
        max_concurrency: int,
        queue_size: int,
        timeout_s: float,
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
        self._threads = [
            threading.Thread(target=self._worker, name=f"imagesense-worker-{i}", daemon=True)
            for i in range(max_concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, work: Callable[[JobContext], T], timeout_s: float | None = None) -> Job[T]:
        """Queue ``work``; raises QueueFull when every slot and queue place is taken."""
        job: Job[T] = Job(next(self._ids), work, timeout_s or self.timeout_s)
        job._on_cancel = self._cancel  # type: ignore[assignment]
        generic_job: Job[object] = job  # type: ignore[assignment]
        with self._cond:
            if self._closed:
                raise PoolClosed("the service is shutting down", retry_after_s=5)
            if self._slots_taken < self.max_concurrency:
                self._take_slot(generic_job)
            elif len(self._waiting) < self.queue_size:
                self._waiting.append(generic_job)
                job.publish(Queued(len(self._waiting)))
            else:
                raise QueueFull(
                    f"{self._slots_taken} requests are running and {len(self._waiting)} waiting "
                    f"(the queue holds {self.queue_size}); retry shortly",
                    retry_after_s=self._retry_after_s(),
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
            return "failed", None, JobTimedOut(f"the request did not finish within {job.timeout_s:g} s")
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

    def stats(self) -> PoolCounts:
        with self._cond:
            return PoolCounts(
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
