"""The reconciler: every ``reconcile_interval_seconds`` one worker (a fenced lock) rebuilds
from PostgreSQL what Redis or a dead worker lost: expired leases released, due scheduled
campaigns started, every sending campaign's batches dispatched again, transactional
messages whose job was lost enqueued again. PostgreSQL is the truth; Redis only carries
work."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.campaign import ab_tests as ab
from mailer.campaign import dispatch, repository, tasks
from mailer.config import Settings
from mailer.db import transaction
from mailer.locks import FencedLock
from mailer.message.tasks import requeue_lost
from mailer.sending import repository as sending_repo
from mailer.subscription import service as subscriptions

log = structlog.get_logger(__name__)


async def reconcile(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    fence: dispatch.Fence | None = None,
) -> None:
    """Rebuild from PostgreSQL what Redis or a dead worker lost, and start due campaigns."""
    async with transaction(sessionmaker) as session:
        await sending_repo.release_expired(session)
        started = await repository.start_due_scheduled(session)
        await subscriptions.forget_old_origins(session, redis, settings)
    for campaign_id in started:
        await dispatch.enqueue_start(redis, campaign_id)
    await ab.decide_due(sessionmaker, redis)  # A/B tests whose wait is over
    async with sessionmaker() as session:
        sending = await repository.campaigns_in(session, ["sending"])
    for campaign in sending:
        if campaign.audience_fixed_at is None:
            if campaign.id not in started:
                # one pending start per campaign: a long audience fix-up must not collect a
                # new start job every round (arq refuses a job id that is still known)
                await dispatch.enqueue_start(
                    redis, campaign.id, job_id=f"reconcile-start:{campaign.id}"
                )
            continue
        await tasks.dispatch_campaign(settings, sessionmaker, redis, campaign, fence)
    # transactional messages whose job was lost (their leases were released above)
    await requeue_lost(sessionmaker, redis, grace=max(5.0, 2 * settings.reconcile_interval_seconds))


RECONCILE_LOCK = "mailer:reconcile"


async def run_reconciler(ctx: dict[str, Any]) -> None:
    """One reconcile round at a time across all workers (a fenced lock), one every
    ``reconcile_interval_seconds``: the lock lingers after a round until the next is due."""
    settings, sessionmaker, redis = ctx["settings"], ctx["sessionmaker"], ctx["redis"]
    interval = settings.reconcile_interval_seconds
    lock = FencedLock(redis, RECONCILE_LOCK, ttl=max(interval, 5.0))
    while True:
        try:
            token = await lock.acquire()
            if token is not None:
                began = time.monotonic()
                keeper = asyncio.create_task(lock.keep(token))
                try:
                    await reconcile(settings, sessionmaker, redis, dispatch.Fence(lock.key, token))
                finally:
                    keeper.cancel()
                    left = interval * 0.9 - (time.monotonic() - began)
                    await lock.release(token, linger_ms=int(left * 1000))
        except Exception as exc:  # noqa: BLE001 - the next round tries again
            log.warning("reconcile_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        await asyncio.sleep(interval)
