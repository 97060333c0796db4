"""The workers' queues poll fast while busy and back off when idle (workers.polling)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from mailer.config import Settings
from workers.polling import BackoffWorker

QUEUE = "arq:test-backoff"


async def _job(ctx: dict[str, Any], n: int) -> int:
    ctx["done"].append((n, time.monotonic()))
    return n


class _Counting(BackoffWorker):
    polls = 0

    async def _poll_iteration(self) -> None:
        type(self).polls += 1
        await super()._poll_iteration()


async def test_an_idle_queue_polls_less_and_still_picks_up_work(settings: Settings, redis: Redis):
    done: list[tuple[int, float]] = []
    worker = _Counting(
        functions=[_job],
        queue_name=QUEUE,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        handle_signals=False,
        poll_delay=0.01,
        idle_poll_delay=0.2,
        busy_seconds=0.3,
        ctx={"done": done},
    )
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
        # busy again: polls at poll_delay for busy_seconds after a job
        polls = _Counting.polls
        await asyncio.sleep(0.2)
        assert _Counting.polls - polls >= 8
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await worker.close()
        await pool.aclose()


async def test_a_poll_leaves_jobs_running_elsewhere_to_one_round_trip(
    settings: Settings, redis: Redis, monkeypatch
):
    """Jobs another worker runs (their in-progress key set) never reach arq's per-job
    WATCH check: a campaign's batches running on other workers cost one pipelined EXISTS
    a poll, not three round trips each. A job nobody runs still starts."""
    from arq import worker as arq_worker
    from arq.constants import in_progress_key_prefix

    done: list[tuple[int, float]] = []
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    jobs = [await pool.enqueue_job("_job", n, _queue_name=QUEUE) for n in range(6)]
    ids = [job.job_id.encode() for job in jobs if job is not None]
    for job_id in ids[1:]:  # five of them "running" on other workers
        await redis.set(in_progress_key_prefix + job_id.decode(), b"1", px=60_000)

    checked: list[list[bytes]] = []
    arq_start_jobs = arq_worker.Worker.start_jobs

    async def recording(self: arq_worker.Worker, job_ids: list[bytes]) -> None:
        checked.append(list(job_ids))
        await arq_start_jobs(self, job_ids)

    monkeypatch.setattr(arq_worker.Worker, "start_jobs", recording)
    worker = BackoffWorker(
        functions=[_job],
        queue_name=QUEUE,
        redis_pool=pool,
        handle_signals=False,
        ctx={"done": done},
    )
    try:
        await worker.start_jobs(ids)
        assert checked == [ids[:1]]
        await asyncio.gather(*worker.tasks.values())
        assert [n for n, _ in done] == [0]
        # the worker's own running job is left out too
        checked.clear()
        worker.tasks[ids[0].decode()] = asyncio.get_running_loop().create_future()
        await worker.start_jobs(ids)
        assert checked == [[]]
    finally:
        worker.tasks.clear()
        await worker.close()
        await pool.aclose()
