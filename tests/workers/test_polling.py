"""The workers' queues poll fast while busy and back off when idle (mailer.queues)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from mailer.config import Settings
from mailer.queues import BackoffWorker

QUEUE = "arq:test-backoff"


async def _job(ctx: dict[str, Any], n: int) -> int:
    ctx["done"].append((n, time.monotonic()))
    return n


class _Counting(BackoffWorker):
    polls = 0

    async def _poll_iteration(self) -> None:
        type(self).polls += 1
        await super()._poll_iteration()


def _settled(worker: BackoffWorker, complete: int) -> bool:
    """At least `complete` jobs ran and every job task has ended, results stored.

    arq counts a job complete before it stores the result; closing the worker then would
    cancel that last step (close() cancels what still runs and gathers it)."""
    return worker.jobs_complete >= complete and worker.job_counter == 0


def _worker(
    settings: Settings,
    ctx: dict[str, Any],
    kind: type[BackoffWorker] = BackoffWorker,
    functions: list[Any] | None = None,
    **options: Any,
) -> BackoffWorker:
    return kind(
        functions=functions or [_job],
        queue_name=QUEUE,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        handle_signals=False,
        poll_delay=0.01,
        ctx=ctx,
        **options,
    )


async def test_an_idle_queue_polls_less_and_still_picks_up_work(settings: Settings, redis: Redis):
    done: list[tuple[int, float]] = []
    worker = _worker(settings, {"done": done}, _Counting, idle_poll_delay=0.2, busy_seconds=0.3)
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    running = asyncio.ensure_future(worker.async_run())
    try:
        await asyncio.sleep(1.0)  # the busy window (0.3 s) and the backoff's ramp
        polls = _Counting.polls
        await asyncio.sleep(2.0)
        # 2 s at 0.01 s would be ~200 polls; backed off to 0.2 s, about 10
        assert _Counting.polls - polls < 30, _Counting.polls - polls
        enqueued = time.monotonic()
        await pool.enqueue_job("_job", 1, _queue_name=QUEUE)
        while not done:
            await asyncio.sleep(0.01)
            assert time.monotonic() - enqueued < 5.0, "the idle worker never picked the job up"
        while not _settled(worker, 1):
            await asyncio.sleep(0.01)
            assert time.monotonic() - enqueued < 5.0, "the job never finished"
        # busy again: polls at poll_delay for busy_seconds after a job
        polls = _Counting.polls
        await asyncio.sleep(0.2)
        assert _Counting.polls - polls >= 8
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        await pool.aclose()


async def test_workers_polling_one_queue_start_each_due_job_once(settings: Settings, redis: Redis):
    from arq.constants import in_progress_key_prefix

    done: list[tuple[int, float]] = []
    workers = [_worker(settings, {"done": done}, max_jobs=3) for _ in range(3)]
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    for n in range(40):
        await pool.enqueue_job("_job", n, _queue_name=QUEUE)
    # one in progress in some other worker, one not due yet: neither is started here
    await pool.enqueue_job("_job", 100, _queue_name=QUEUE, _job_id="elsewhere")
    await redis.psetex(in_progress_key_prefix + "elsewhere", 60_000, b"1")
    await pool.enqueue_job("_job", 200, _queue_name=QUEUE, _defer_by=3600)
    running = [asyncio.ensure_future(w.async_run()) for w in workers]
    try:
        deadline = time.monotonic() + 20
        while sum(w.jobs_complete for w in workers) < 40 or not all(
            _settled(w, 0) for w in workers
        ):
            assert time.monotonic() < deadline, sorted(n for n, _ in done)
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)  # a few more polls of every worker
        assert sorted(n for n, _ in done) == list(range(40))
        assert sum(w.jobs_complete for w in workers) == 40
        assert await redis.zscore(QUEUE, "elsewhere") is not None
    finally:
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        for w in workers:
            await w.close()
        await pool.aclose()


async def _slow(ctx: dict[str, Any], n: int) -> int:
    ctx["now"].add(n)
    ctx["most"][0] = max(ctx["most"][0], len(ctx["now"]))
    await asyncio.sleep(0.05)
    ctx["now"].discard(n)
    ctx["done"].append((n, time.monotonic()))
    return n


async def test_a_poll_starts_no_more_jobs_than_max_jobs(settings: Settings, redis: Redis):
    done: list[tuple[int, float]] = []
    ctx: dict[str, Any] = {"done": done, "now": set(), "most": [0]}
    worker = _worker(settings, ctx, functions=[_slow], max_jobs=4)
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    for n in range(20):
        await pool.enqueue_job("_slow", n, _queue_name=QUEUE)
    running = asyncio.ensure_future(worker.async_run())
    try:
        deadline = time.monotonic() + 20
        while not _settled(worker, 20):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        assert sorted(n for n, _ in done) == list(range(20))
        assert ctx["most"] == [4]
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        await pool.aclose()
