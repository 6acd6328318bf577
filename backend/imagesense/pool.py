"""A bounded worker pool for blocking model work, consumed from asyncio.

At most ``max_concurrency`` jobs run at once, each on one of the pool's own threads (never the event loop
or the default threadpool); up to ``queue_size`` more wait, at most ``max_queued_per_client`` of them one
client's, and the next one is refused (QueueFull). Waiting jobs are served round-robin across clients, so
one client's burst never pushes the others back: each client's next job comes in turn. Every
job knows its queue position, can be cancelled while waiting or running, and has a deadline that covers
its time in the queue: at the deadline the pool drops a waiting job, or settles a running one at once and
asks it to stop. Every path frees the slot. Events (queue position, start, output) reach the async side
through the loop's thread-safe ``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from imagesense.jobs import Job, JobCancelled, JobContext, PoolClosed, Queued, QueueFull, Started

log = logging.getLogger(__name__)
T = TypeVar("T")
Outcome = Literal["completed", "failed", "cancelled", "timed_out"]


@dataclass(frozen=True)
class PoolCounts:
    max_concurrency: int
    active: int  # jobs holding a slot
    queued: int  # jobs waiting for one
    queue_size: int
    completed: int
    failed: int
    cancelled: int
    timed_out: int
    peak_active: int


class WorkerPool:
    def __init__(
        self,
        max_concurrency: int,
        queue_size: int,
        timeout_s: float,
        max_queued_per_client: int | None = None,
        name: str = "worker",
    ) -> None:
        self.max_concurrency = max_concurrency
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self.max_queued_per_client = max_queued_per_client or max(1, queue_size)
        self._cond = threading.Condition()
        self._ready: deque[Job[object]] = deque()  # given a slot, about to run
        self._waiting = FairQueue()  # waiting for a slot, per client
        self._running: set[Job[object]] = set()
        self._slots_taken = 0
        self._counts = {"completed": 0, "failed": 0, "cancelled": 0, "timed_out": 0, "peak_active": 0}
        self._closed = False
        self._ids = itertools.count(1)
        self._threads = [
            threading.Thread(target=self._worker, name=f"imagesense-{name}-{i}", daemon=True)
            for i in range(max_concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, work: Callable[[JobContext], T], deadline: float | None = None, client: str = "") -> Job[T]:
        """Queue ``client``'s ``work``, due by ``deadline`` (``time.monotonic()``; default: now + the pool's
        timeout). Raises QueueFull when the queue, or the client's share of it, is full; PoolClosed once
        shutting down."""
        job: Job[T] = Job(next(self._ids), work, deadline or time.monotonic() + self.timeout_s, client)
        job._on_cancel = self._cancel  # type: ignore[assignment]
        generic_job: Job[object] = job  # type: ignore[assignment]
        with self._cond:
            if self._closed:
                raise PoolClosed("the service is shutting down; retry on another instance or shortly", 5)
            if self._slots_taken < self.max_concurrency:
                self._take_slot(generic_job)
            elif self._waiting.count(client) >= self.max_queued_per_client and len(self._waiting) < self.queue_size:
                raise QueueFull(
                    f"{self._waiting.count(client)} of your requests are waiting already (the limit per client "
                    f"is {self.max_queued_per_client}); retry when one has started",
                    retry_after_s=self._retry_after_s(),
                )
            elif len(self._waiting) < self.queue_size:
                self._waiting.append(generic_job)
                self._publish_positions()
            else:
                raise QueueFull(
                    f"{self._slots_taken} requests are running and {len(self._waiting)} waiting "
                    f"(the queue holds {self.queue_size}); retry shortly",
                    retry_after_s=self._retry_after_s(),
                )
        # call_later, not call_at: a loop's clock (uvloop's) need not be time.monotonic().
        timer = asyncio.get_running_loop().call_later(job.deadline - time.monotonic(), self._expire, generic_job)
        job.add_done_callback(timer.cancel)
        return job

    def _retry_after_s(self) -> int:
        return max(1, min(60, len(self._waiting) * 5))

    def _take_slot(self, job: Job[object]) -> None:
        self._slots_taken += 1
        self._counts["peak_active"] = max(self._counts["peak_active"], self._slots_taken)
        self._ready.append(job)
        self._cond.notify()

    def _cancel(self, job: Job[object]) -> None:
        if self._drop_waiting(job, "cancelled"):
            job.finish(None, JobCancelled(by_shutdown=job.stopped_by_shutdown))

    def _expire(self, job: Job[object]) -> None:
        """The deadline passed (on the event loop): a waiting job leaves the queue, a running one is told
        to stop and its client answered now, without waiting for the work to notice. Work that returned
        in time is left for its worker to settle, however late this timer fires."""
        if job.returned_at is not None and job.returned_at <= job.deadline:
            return
        job.timed_out = True
        job.cancel_requested.set()
        self._drop_waiting(job, "timed_out")
        job.finish(None, job.timeout_error())

    def _drop_waiting(self, job: Job[object], outcome: Outcome) -> bool:
        with self._cond:
            if job not in self._waiting:
                return False  # running (it stops itself) or finished
            self._waiting.remove(job)
            self._counts[outcome] += 1
            self._publish_positions()
        return True

    def _publish_positions(self) -> None:
        for position, job in enumerate(self._waiting.in_turn(), start=1):
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

    def _run(self, job: Job[object]) -> tuple[Outcome, object, BaseException | None]:
        """Run the work; returns (outcome, result, error) for the job to be settled with."""
        result: object = None
        if not JobContext(job).should_stop():
            job.started_at = time.monotonic()
            job.publish(Started(queue_ms=(job.started_at - job.created) * 1000))
            try:
                result = job.work(JobContext(job))
                job.returned_at = time.monotonic()
            except BaseException as exc:  # every failure is the job's, never the worker's
                # Past the deadline or cancelled, it broke off because it was stopped: should_stop() turns
                # true at the deadline itself, possibly before the event loop's timer has marked the job.
                if not job.cancel_requested.is_set() and time.monotonic() <= job.deadline:
                    log.debug("job %d failed", job.id, exc_info=exc)  # the task's log line reports it
                    return "failed", None, exc
        # A job stopped early ends as a timeout or a cancellation, whatever its work returned; one whose
        # work returned by the deadline is never a timeout after the fact.
        in_time = job.returned_at is not None and job.returned_at <= job.deadline
        if not in_time and (job.timed_out or time.monotonic() > job.deadline):
            return "timed_out", None, job.timeout_error()
        if job.cancel_requested.is_set():
            return "cancelled", None, JobCancelled(by_shutdown=job.stopped_by_shutdown)
        return "completed", result, None

    def _settle(self, job: Job[object], outcome: Outcome, result: object, error: BaseException | None) -> None:
        with self._cond:
            self._counts[outcome] += 1
        job.finish(result, error)

    def _release_slot(self, job: Job[object]) -> None:
        with self._cond:
            self._running.discard(job)
            self._slots_taken -= 1
            if self._waiting:
                self._take_slot(self._waiting.pop_next())
                self._publish_positions()
            self._cond.notify_all()  # wakes drain() as well as idle workers

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
                completed=self._counts["completed"],
                failed=self._counts["failed"],
                cancelled=self._counts["cancelled"],
                timed_out=self._counts["timed_out"],
                peak_active=self._counts["peak_active"],
            )

    def close(self) -> None:
        """Take no new work (PoolClosed); what is queued or running goes on."""
        with self._cond:
            self._closed = True

    def drain(self, grace_s: float) -> bool:
        """Blocking: wait up to ``grace_s`` for every queued and running job to end; True if they did."""
        deadline = time.monotonic() + grace_s
        with self._cond:
            while self._slots_taken or self._waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def shutdown(self, join_s: float = 30.0) -> None:
        """Blocking: stop everything still there (each ends as a cancellation by shutdown) and join the
        threads; running work stops at its next check (a layer or a token)."""
        with self._cond:
            self._closed = True
            stopping = self._waiting.in_turn() + list(self._ready) + list(self._running)
            self._cond.notify_all()
        for job in stopping:
            job.stopped_by_shutdown = True
            job.cancel()
        for thread in self._threads:
            thread.join(timeout=join_s)


class FairQueue:
    """Waiting jobs by client, served in turn: the next job is the oldest of the client whose turn it is,
    and that client goes to the back of the line. Not thread-safe: the pool holds its lock."""

    def __init__(self) -> None:
        self._by_client: dict[str, deque[Job[object]]] = {}  # in turn order: the first client is next

    def append(self, job: Job[object]) -> None:
        self._by_client.setdefault(job.client, deque()).append(job)

    def pop_next(self) -> Job[object]:
        client = next(iter(self._by_client))
        jobs = self._by_client.pop(client)
        job = jobs.popleft()
        if jobs:
            self._by_client[client] = jobs  # back of the line
        return job

    def remove(self, job: Job[object]) -> None:
        jobs = self._by_client[job.client]
        jobs.remove(job)
        if not jobs:
            del self._by_client[job.client]

    def count(self, client: str) -> int:
        return len(self._by_client.get(client, ()))

    def in_turn(self) -> list[Job[object]]:
        """Every waiting job in the order it will start: the first of each client, then the second..."""
        queues = list(self._by_client.values())
        return [
            queue[rank] for rank in range(max(map(len, queues), default=0)) for queue in queues if rank < len(queue)
        ]

    def __contains__(self, job: Job[object]) -> bool:
        return job in self._by_client.get(job.client, ())

    def __len__(self) -> int:
        return sum(map(len, self._by_client.values()))

    def __bool__(self) -> bool:
        return bool(self._by_client)
