"""The bounded worker pool (unit tests with plain Python work functions)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable

import pytest

from imagesense.errors import api_error_from
from imagesense.jobs import Job, JobCancelled, JobContext, JobTimedOut, Output, PoolClosed, Queued, QueueFull, Started
from imagesense.pool import WorkerPool


class Gate:
    """Work that blocks until released (or stopped), recording how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.threads: set[str] = set()

    def work(self, value: str = "ok") -> Callable[[JobContext], str]:
        def run(context: JobContext) -> str:
            with self.lock:
                self.running += 1
                self.peak = max(self.peak, self.running)
                self.threads.add(threading.current_thread().name)
            try:
                while not self.release.wait(0.005):
                    if context.should_stop():
                        return "stopped"
                return value
            finally:
                with self.lock:
                    self.running -= 1

        return run


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    worker_pool = WorkerPool(max_concurrency=2, queue_size=2, timeout_s=30)
    yield worker_pool
    worker_pool.shutdown()


async def wait_for(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


async def drain(job: Job[str]) -> list[object]:
    return [event async for event in job.events()]


async def test_concurrency_never_exceeds_the_cap(pool: WorkerPool) -> None:
    gate = Gate()
    jobs = [pool.submit(gate.work(str(i))) for i in range(4)]
    await wait_for(lambda: gate.running == 2)
    assert pool.stats().active == 2
    assert pool.stats().queued == 2
    gate.release.set()
    assert await asyncio.gather(*(job.result() for job in jobs)) == ["0", "1", "2", "3"]
    assert gate.peak == 2
    assert pool.stats().peak_active == 2
    assert all(name.startswith("imagesense-worker-") for name in gate.threads)  # the pool's own threads
    assert pool.stats().completed == 4
    assert pool.stats().active == 0


async def test_queue_positions_are_reported_and_advance(pool: WorkerPool) -> None:
    gate = Gate()
    running = [pool.submit(gate.work()) for _ in range(2)]
    first, second = pool.submit(gate.work()), pool.submit(gate.work())
    second.cancel()  # the one behind moves up when a waiting job leaves
    third = pool.submit(gate.work())
    gate.release.set()
    events = await drain(first)
    assert events[0] == Queued(1)
    assert isinstance(events[-1], Started)
    third_events = await drain(third)
    assert Queued(2) in third_events
    assert Queued(1) in third_events
    await asyncio.gather(*(job.result() for job in running))


async def test_past_the_queue_is_refused_with_retry_after(pool: WorkerPool) -> None:
    gate = Gate()
    jobs = [pool.submit(gate.work()) for _ in range(4)]
    with pytest.raises(QueueFull) as caught:
        pool.submit(gate.work())
    assert caught.value.retry_after_s >= 1
    answer = api_error_from(caught.value)
    assert answer is not None
    assert answer.status == 429
    assert int(answer.headers["Retry-After"]) == caught.value.retry_after_s
    gate.release.set()
    await asyncio.gather(*(job.result() for job in jobs))


async def test_cancel_while_queued_never_runs(pool: WorkerPool) -> None:
    gate = Gate()
    running = [pool.submit(gate.work()) for _ in range(2)]
    waiting = pool.submit(gate.work("never"))
    waiting.cancel()
    with pytest.raises(JobCancelled):
        await waiting.result()
    assert pool.stats().queued == 0
    assert pool.stats().cancelled == 1
    gate.release.set()
    await asyncio.gather(*(job.result() for job in running))
    assert pool.stats().completed == 2


async def test_cancel_while_running_stops_and_frees_the_slot(pool: WorkerPool) -> None:
    gate = Gate()
    job = pool.submit(gate.work())
    await wait_for(lambda: gate.running == 1)
    job.cancel()
    with pytest.raises(JobCancelled):
        await job.result()
    await wait_for(lambda: pool.stats().active == 0)
    assert pool.stats().cancelled == 1


async def test_a_failing_job_frees_its_slot_and_the_worker_lives(pool: WorkerPool) -> None:
    def boom(_context: JobContext) -> str:
        raise RuntimeError("boom")

    for _ in range(3):  # more failures than workers: a dead worker would hang the next job
        with pytest.raises(RuntimeError, match="boom"):
            await pool.submit(boom).result()
    gate = Gate()
    gate.release.set()
    assert await pool.submit(gate.work("alive")).result() == "alive"
    assert pool.stats().failed == 3
    assert pool.stats().active == 0


async def test_timeout_raises_504_and_stops_the_work(pool: WorkerPool) -> None:
    gate = Gate()
    job = pool.submit(gate.work(), deadline=time.monotonic() + 0.2)
    began = time.monotonic()
    with pytest.raises(JobTimedOut) as caught:
        await job.result()
    assert time.monotonic() - began < 0.5  # answered at the deadline, not when the work noticed
    answer = api_error_from(caught.value)
    assert answer is not None
    assert answer.status == 504
    await wait_for(lambda: pool.stats().active == 0)
    assert (pool.stats().timed_out, pool.stats().failed) == (1, 0)


async def test_the_deadline_covers_time_in_the_queue(pool: WorkerPool) -> None:
    gate = Gate()
    running = [pool.submit(gate.work()) for _ in range(2)]
    await wait_for(lambda: gate.running == 2)
    queued = pool.submit(gate.work(), deadline=time.monotonic() + 0.2)
    events = asyncio.create_task(drain(queued))
    with pytest.raises(JobTimedOut):
        await queued.result()
    assert Started not in {type(event) for event in await events}  # it never ran
    assert pool.stats().queued == 0
    assert (pool.stats().timed_out, pool.stats().cancelled) == (1, 0)
    gate.release.set()
    assert await asyncio.gather(*(job.result() for job in running)) == ["ok", "ok"]


async def test_a_closed_pool_takes_no_work_and_drains_what_it_has(pool: WorkerPool) -> None:
    gate = Gate()
    job = pool.submit(gate.work())
    pool.close()
    with pytest.raises(PoolClosed) as caught:
        pool.submit(gate.work())
    answer = api_error_from(caught.value)
    assert answer is not None
    assert (answer.status, answer.headers["Retry-After"]) == (503, "5")
    assert not await asyncio.to_thread(pool.drain, 0.1)  # still running
    gate.release.set()
    assert await asyncio.to_thread(pool.drain, 5.0)
    assert await job.result() == "ok"


async def test_shutdown_stops_running_and_queued_work_as_cancelled_by_shutdown() -> None:
    small = WorkerPool(max_concurrency=1, queue_size=1, timeout_s=30)
    gate = Gate()
    running, queued = small.submit(gate.work()), small.submit(gate.work())
    await wait_for(lambda: gate.running == 1)
    await asyncio.to_thread(small.shutdown)
    for job in (running, queued):
        with pytest.raises(JobCancelled) as caught:
            await job.result()
        assert caught.value.by_shutdown
    assert small.stats().cancelled == 2


async def test_output_reaches_the_async_side_in_order(pool: WorkerPool) -> None:
    def speak(context: JobContext) -> str:
        for word in ("a", "b", "c"):
            context.emit(word)
        return "abc"

    job = pool.submit(speak)
    events = await drain(job)
    assert [event.text for event in events if isinstance(event, Output)] == ["a", "b", "c"]
    assert isinstance(events[0], Started)
    assert await job.result() == "abc"


async def test_awaiting_task_cancelled_cancels_the_job(pool: WorkerPool) -> None:
    gate = Gate()
    job = pool.submit(gate.work())
    waiter = asyncio.create_task(job.result())
    await wait_for(lambda: gate.running == 1)
    waiter.cancel()
    await wait_for(lambda: pool.stats().active == 0)
    assert job.cancel_requested.is_set()


async def test_the_queue_serves_clients_in_turn_and_bounds_each_clients_share() -> None:
    """A burst from one client can't push another out: the second client's job starts before the first
    client's burst is done, and one client holds at most its share of the queue."""
    fair = WorkerPool(max_concurrency=1, queue_size=8, timeout_s=30, max_queued_per_client=3)
    order: list[str] = []
    gate = threading.Event()

    def work(name: str) -> Callable[[JobContext], str]:
        def run(_context: JobContext) -> str:
            gate.wait(5)
            order.append(name)
            return name

        return run

    burst = [fair.submit(work(f"a{i}"), client="alice") for i in range(4)]  # one runs, three wait
    with pytest.raises(QueueFull, match="limit per client is 3"):
        fair.submit(work("a4"), client="alice")
    late = fair.submit(work("b0"), client="bob")
    first_event = await asyncio.wait_for(anext(late.events()), 1)
    assert first_event == Queued(2)  # after alice's first waiting job, before her others
    gate.set()
    await asyncio.gather(*(job.result() for job in [*burst, late]))
    assert order == ["a0", "a1", "b0", "a2", "a3"]
    await asyncio.to_thread(fair.shutdown)


async def test_work_that_returned_in_time_is_never_a_timeout_after_the_fact(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker is slow to settle (here: to free its slot) and the deadline's timer fires meanwhile:
    the work returned before the deadline, so its result stands."""
    worker_pool = WorkerPool(max_concurrency=1, queue_size=1, timeout_s=30)
    release = worker_pool._release_slot

    def slow_release(job: Job[object]) -> None:
        time.sleep(0.4)
        release(job)

    monkeypatch.setattr(worker_pool, "_release_slot", slow_release)
    deadline = time.monotonic() + 0.3

    def work(context: JobContext) -> str:
        time.sleep(max(0.0, deadline - 0.15 - time.monotonic()))
        return "done in time"

    try:
        assert await worker_pool.submit(work, deadline).result() == "done in time"
        assert worker_pool.stats().timed_out == 0
    finally:
        worker_pool.shutdown()
