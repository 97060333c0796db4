"""mailer.queues is the one module that knows arq's private layout: these tests fail when an
arq upgrade changes what it relies on (the job's keys and serialisation, the worker's poll
loop and bookkeeping), before anything is sent wrong."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.jobs import Job, JobStatus
from arq.worker import Worker
from redis.asyncio import Redis

from mailer import queues
from mailer.config import Settings

QUEUE = "arq:test-queues"


async def _pool(settings: Settings) -> ArqRedis:
    return await create_pool(RedisSettings.from_dsn(settings.redis_url))


async def test_a_fast_enqueue_is_the_job_arq_would_have_written(settings: Settings, redis: Redis):
    pool = await _pool(settings)
    try:
        await queues.enqueue(pool, QUEUE, "send_messages", [1, 2, 3], begin=True)
        await pool.enqueue_job("send_messages", [1, 2, 3], begin=True, _queue_name=QUEUE)
        ours, arqs = await pool.queued_jobs(queue_name=QUEUE)
        assert (ours.function, ours.args, ours.kwargs) == (
            "send_messages",
            ([1, 2, 3],),
            {"begin": True},
        )
        assert (ours.function, ours.args, ours.kwargs) == (arqs.function, arqs.args, arqs.kwargs)
        assert ours.job_try == arqs.job_try
        # queued now, under a key arq's Job reads, with the same expiry rule
        job_ids = [j.decode() for j in await redis.zrange(QUEUE, 0, -1)]
        assert len(job_ids) == 2
        statuses = [await Job(i, pool, _queue_name=QUEUE).status() for i in job_ids]
        assert statuses == [JobStatus.queued, JobStatus.queued]
        ttls = [await redis.pttl(queues.job_key_prefix + i) for i in job_ids]
        assert all(abs(ttl - pool.expires_extra_ms) < 5_000 for ttl in ttls), ttls
    finally:
        await pool.aclose()


async def test_a_deferred_fast_enqueue_is_due_at_its_time(settings: Settings, redis: Redis):
    pool = await _pool(settings)
    try:
        at = datetime.now(UTC) + timedelta(minutes=5)
        await queues.enqueue(pool, QUEUE, "send_messages", [7], defer_until=at)
        ((job_id, score),) = await redis.zrange(QUEUE, 0, -1, withscores=True)
        assert abs(score - at.timestamp() * 1000) < 2
        assert await Job(job_id.decode(), pool, _queue_name=QUEUE).status() == JobStatus.deferred
    finally:
        await pool.aclose()


async def test_a_job_id_makes_one_pending_job(settings: Settings, redis: Redis):
    pool = await _pool(settings)
    try:
        for _ in range(3):
            await queues.enqueue(pool, QUEUE, "import_contacts", 9, job_id="import:9")
        assert await redis.zrange(QUEUE, 0, -1) == [b"import:9"]
    finally:
        await pool.aclose()


async def _noop(ctx: dict[str, Any]) -> None:
    return None


def _arq_worker_parts() -> dict[str, Any]:
    worker = Worker(functions=[_noop], queue_name=QUEUE, handle_signals=False)
    return vars(worker)


def test_the_worker_internals_the_backoff_worker_uses_are_there():
    # methods it overrides or calls, with the signatures it assumes
    assert list(inspect.signature(Worker._poll_iteration).parameters) == ["self"]
    assert list(inspect.signature(Worker.start_jobs).parameters) == ["self", "job_ids"]
    assert list(inspect.signature(Worker.run_job).parameters) == ["self", "job_id", "score"]
    assert callable(Worker._release_sem_dec_counter_on_complete)
    # the bookkeeping it reads and writes
    parts = _arq_worker_parts()
    for name in (
        "sem",
        "job_counter",
        "tasks",
        "max_jobs",
        "in_progress_timeout_s",
        "allow_pick_jobs",
        "poll_delay_s",
        "queue_name",
    ):
        assert name in parts, name
    assert queues.IN_PROGRESS_KEY_PREFIX == "arq:in-progress:"
    assert queues.RESULT_KEY_PREFIX == "arq:result:"
