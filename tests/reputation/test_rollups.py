"""Rollup upkeep: minute buckets older than two hours fold into hours, sums unchanged."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from mailer.db import transaction
from mailer.reputation import repository


async def test_compaction_keeps_the_sums_and_recent_minutes(engine, sessionmaker) -> None:  # type: ignore[no-untyped-def]
    async with engine.begin() as conn:
        # 6 hours of minutes, two regions, one campaign
        await conn.execute(
            text(
                """
            INSERT INTO reputation_minutes (minute, mail_class, region, configuration_set,
                                            campaign_id, sent, delivered, hard_bounces,
                                            soft_bounces, complaints)
            SELECT m, 'marketing', r, 'marketing', 7, 10, 9, 1, 2, 0
              FROM generate_series(date_trunc('minute', now()) - interval '6 hours',
                                   date_trunc('minute', now()), interval '1 minute') m,
                   unnest(ARRAY['us-east-1', 'eu-west-1']) r
            """
            )
        )

    async def sums() -> tuple[int, ...]:
        async with engine.connect() as conn:
            return tuple(
                (
                    await conn.execute(
                        text(
                            "SELECT count(*), sum(sent), sum(delivered), sum(hard_bounces),"
                            " sum(soft_bounces), sum(complaints),"
                            " sum(sent) FILTER (WHERE minute >= now() - interval '1 hour')"
                            " FROM reputation_minutes"
                        )
                    )
                ).one()
            )

    before = await sums()
    async with transaction(sessionmaker) as session:
        assert await repository.compact(session) > 0
    after = await sums()
    assert after[1:] == before[1:]  # every count kept, the last hour's at minute grain
    assert after[0] < before[0] / 2  # 4 of the 6 hours as one row an hour
    async with transaction(sessionmaker) as session:
        assert await repository.compact(session) == 0  # safe to run again
    assert await sums() == after
    async with engine.connect() as conn:
        odd = (
            await conn.execute(
                text(
                    "SELECT count(*) FROM reputation_minutes"
                    " WHERE minute < date_trunc('hour', now()) - interval '1 hour'"
                    " AND minute <> date_trunc('hour', minute)"
                )
            )
        ).scalar_one()
    assert odd == 0


async def test_a_worker_compacts_the_rollups_when_it_starts(engine, redis, start_worker) -> None:  # type: ignore[no-untyped-def]
    """``mailer worker`` runs the compactor (its first round at start-up): old minutes
    become hours without anyone calling it. (``redis``: emptied first, so no earlier
    test's worker holds the compactor's round lock.)"""
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """
            INSERT INTO reputation_minutes (minute, mail_class, region, configuration_set,
                                            campaign_id, sent)
            SELECT m, 'marketing', 'us-east-1', 'marketing', 7, 10
              FROM generate_series(date_trunc('minute', now()) - interval '4 hours',
                                   date_trunc('minute', now()) - interval '3 hours',
                                   interval '1 minute') m
            """
            )
        )

    async def rows() -> tuple[int, int]:
        async with engine.connect() as conn:
            row = (
                await conn.execute(text("SELECT count(*), sum(sent) FROM reputation_minutes"))
            ).one()
            return int(row[0]), int(row[1])

    before = await rows()
    worker = start_worker()
    for _ in range(300):  # 30 s at most: the worker's start-up, then one round
        if (await rows())[0] < before[0]:
            break
        await asyncio.sleep(0.1)
    after = await rows()
    assert after[0] < before[0] and after[1] == before[1], worker.log()
    assert "reputation_compact_failed" not in worker.log()
