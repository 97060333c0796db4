"""The reconciler's pieces: due ranges by index probes, owners checked in bulk, a fenced
lock so that one round runs at a time across all workers."""

from __future__ import annotations

import asyncio

from arq import create_pool
from arq.connections import RedisSettings
from sqlalchemy import text

from mailer.campaign import dispatch, repository
from mailer.locks import FENCED_SET, FencedLock
from mailer.models import Campaign

SIZE = 10
FIRST = 1001


async def _messages(engine, rows: list[tuple[int, str, bool]]) -> None:  # type: ignore[no-untyped-def]
    """Messages of campaign 7: (id, status, due now)."""
    async with engine.begin() as conn:
        await conn.execute(
            text("""
                INSERT INTO messages (id, campaign_id, contact_id, email, mail_class, status,
                                      next_attempt_at)
                SELECT i, 7, i, 'u' || i || '@example.test', 'marketing', s,
                       CASE WHEN d THEN now() - interval '1 s' ELSE now() + interval '1 h' END
                  FROM unnest(CAST(:ids AS bigint[]), CAST(:statuses AS text[]),
                              CAST(:due AS boolean[])) AS t(i, s, d)
            """),
            {
                "ids": [r[0] for r in rows],
                "statuses": [r[1] for r in rows],
                "due": [r[2] for r in rows],
            },
        )


async def test_due_batches_are_the_ranges_with_due_queued_work(engine, sessionmaker):
    rows = []
    for i in range(80):  # batches 0..7 of 10 ids each
        batch = i // SIZE
        status = "sent" if batch in (1, 6) else "queued"
        due = batch != 3
        if batch == 4:  # one due queued message at the very end of the range
            status = "queued" if i % SIZE == SIZE - 1 else "sent"
        if batch == 5 and i % SIZE:  # only the first id of the range is still queued
            status = "failed"
        rows.append((FIRST + i, status, due))
    await _messages(engine, rows)
    campaign = Campaign(id=7, first_message_id=FIRST)
    async with sessionmaker() as session:
        batches = await repository.due_batches(session, campaign, SIZE)
    assert batches == [0, 2, 4, 5, 7]


async def test_due_batches_of_a_campaign_without_queued_work(engine, sessionmaker):
    await _messages(engine, [(FIRST + i, "sent", True) for i in range(30)])
    async with sessionmaker() as session:
        assert (
            await repository.due_batches(session, Campaign(id=7, first_message_id=FIRST), SIZE)
            == []
        )


async def test_needs_jobs_skips_ranges_held_by_a_queued_or_beating_job(redis, settings):
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        queued = await dispatch.enqueue_batch(pool, 7, 0, 1, 10)
        running = await dispatch.enqueue_batch(pool, 7, 1, 11, 20)
        dead = await dispatch.enqueue_batch(pool, 7, 2, 21, 30)
        finished = await dispatch.enqueue_batch(pool, 7, 3, 31, 40)
        assert queued and running and dead and finished
        # batch 1: taken by a worker that beats; batch 2: taken by one that died
        for job_id in (running, dead):
            await redis.zrem(dispatch.SEND_QUEUE, job_id)
            await redis.set(f"arq:in-progress:{job_id}", b"1")
        await redis.set(dispatch.heartbeat_key(7, 1), b"x")
        await redis.zrem(dispatch.SEND_QUEUE, finished)
        await redis.set(f"arq:result:{finished}", b"r")
        assert await dispatch.needs_jobs(pool, 7, [0, 1, 2, 3, 4]) == [2, 3, 4]
        assert await dispatch.needs_jobs(pool, 7, []) == []
    finally:
        await pool.aclose()


async def test_fenced_lock_has_one_holder_and_refuses_a_stale_one(redis):
    lock = FencedLock(redis, "test:reconcile", ttl=0.3)
    first = await lock.acquire()
    assert first is not None
    assert await lock.acquire() is None  # held
    fence = dispatch.Fence(lock.key, first)
    pool_set = redis.register_script(FENCED_SET)
    assert await pool_set(keys=[fence.lock_key, "test:owner"], args=[first, "a", 60]) == 1

    await asyncio.sleep(0.4)  # the first holder stalls past its lock
    second = await lock.acquire()
    assert second is not None and int(second) > int(first)
    # the stale holder can neither write through the fence nor keep or free the lock
    assert await pool_set(keys=[fence.lock_key, "test:owner"], args=[first, "b", 60]) == 0
    assert await redis.get("test:owner") == b"a"
    assert not await lock.extend(first)
    await lock.release(first)
    assert await lock.acquire() is None
    assert await redis.get(lock.key) == second.encode()

    # a round's end lets the lock linger until the next round is due
    await lock.release(second, linger_ms=300)
    assert await lock.acquire() is None
    await asyncio.sleep(0.4)
    assert await lock.acquire() is not None


async def test_a_kept_lock_outlives_its_ttl(redis):
    lock = FencedLock(redis, "test:kept", ttl=0.3)
    token = await lock.acquire()
    assert token is not None
    keeper = asyncio.create_task(lock.keep(token))
    await asyncio.sleep(0.8)
    assert await lock.acquire() is None
    keeper.cancel()
    await lock.release(token)
    assert await lock.acquire() is not None


async def test_a_stale_round_enqueues_nothing(redis, settings):
    lock = FencedLock(redis, "test:stale", ttl=0.2)
    stale = await lock.acquire()
    assert stale is not None
    await asyncio.sleep(0.3)
    current = await lock.acquire()
    assert current is not None
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        refused = await dispatch.enqueue_batch(
            pool, 7, 0, 1, 10, fence=dispatch.Fence(lock.key, stale)
        )
        assert refused is None and await redis.zcard(dispatch.SEND_QUEUE) == 0
        taken = await dispatch.enqueue_batch(
            pool, 7, 0, 1, 10, fence=dispatch.Fence(lock.key, current)
        )
        assert taken is not None and await redis.zcard(dispatch.SEND_QUEUE) == 1
        assert await dispatch.needs_jobs(pool, 7, [0]) == []
    finally:
        await pool.aclose()
