"""The senders' view of which campaigns are sending (``CampaignStates``)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from mailer.config import Settings
from mailer.db import create_engine, create_sessionmaker
from mailer.sending.campaign_states import CampaignStates
from tests import factories


async def test_the_view_stays_fresh_while_the_pool_is_exhausted(
    client, admin, engine, settings: Settings
):
    """The poll has its own connection: with every pooled connection taken by the send
    path's flushes, a stale view is renewed by the next poll, and a pause is seen."""
    campaign = await factories.campaign(client, admin)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE campaigns SET status = 'sending' WHERE id = :id"), {"id": campaign["id"]}
        )
    small = create_engine(settings, pool_size=2, pre_ping=False)
    small.pool._max_overflow = 0  # type: ignore[attr-defined] - exactly two connections
    small.pool._timeout = 0.2  # type: ignore[attr-defined]
    states = CampaignStates(create_sessionmaker(small), refresh=0.05, stale_after=0.5)
    try:
        states.watch(campaign["id"])
        await states.wait_fresh(campaign["id"], 5.0)
        async with contextlib.AsyncExitStack() as held:
            # every connection the pool still has, as the send path's flushes take them
            with contextlib.suppress(PoolTimeout):
                for _ in range(3):
                    await held.enter_async_context(small.connect())
            states._seen_at[campaign["id"]] = 0.0  # as if the last poll came late
            assert not states.is_sending(campaign["id"])
            started = time.monotonic()
            await states.wait_fresh(campaign["id"], 3.0)
            assert states.is_sending(campaign["id"])
            assert time.monotonic() - started < 2.0
            async with engine.begin() as conn:
                await conn.execute(
                    text("UPDATE campaigns SET status = 'paused' WHERE id = :id"),
                    {"id": campaign["id"]},
                )
            for _ in range(100):  # the next polls see the pause (5 s at most)
                if not states.is_sending(campaign["id"]):
                    break
                await asyncio.sleep(0.05)
            assert not states.is_sending(campaign["id"])
    finally:
        states.unwatch(campaign["id"])
        await states.close()
        await small.dispose()
