"""Campaign jobs (arq): plain ``async def f(ctx, ...)``, ids not objects, safe to run twice."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime
from typing import Any

import structlog
from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.campaign import dispatch, repository, service
from mailer.config import Settings
from mailer.db import transaction
from mailer.engagement import ab
from mailer.locks import FencedLock
from mailer.message.tasks import requeue_lost
from mailer.models import Campaign
from mailer.sending import repository as sending_repo
from mailer.sending.service import Sender

log = structlog.get_logger(__name__)


def _deps(ctx: dict[str, Any]) -> tuple[Settings, async_sessionmaker[AsyncSession], ArqRedis]:
    return ctx["settings"], ctx["sessionmaker"], ctx["redis"]


async def start_campaign(ctx: dict[str, Any], campaign_id: int) -> int:
    """Fix the audience (once) and hand out the work; the number of jobs enqueued."""
    settings, sessionmaker, redis = _deps(ctx)
    async with transaction(sessionmaker) as session:
        campaign = await service.start(
            session,
            redis,
            campaign_id,
            connections=settings.audience_fixup_connections,
            part_min=settings.audience_fixup_part_min,
        )
    if campaign is None:
        return 0
    # fixed ahead of its send_at: its batches wait in the queue until then
    send_at = campaign.send_at
    at = send_at if send_at is not None and send_at > datetime.now(UTC) else None
    enqueued = await dispatch_campaign(
        settings, sessionmaker, redis, campaign, at=at, begin=campaign.status == "scheduled"
    )
    sender: Sender | None = ctx.get("sender")
    if sender is not None:
        await sender.plan(campaign.id)  # compile its template before the first batch
    return enqueued


async def dispatch_campaign(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    campaign: Campaign,
    fence: dispatch.Fence | None = None,
    at: datetime | None = None,
    begin: bool = False,
) -> int:
    """Enqueue a job for every id range with due work that no live job holds (work due
    by ``at``, in jobs deferred to ``at``, when given; ``begin``: the jobs turn the
    scheduled campaign ``sending``)."""
    if campaign.first_message_id is None:
        async with transaction(sessionmaker) as session:
            await repository.complete_if_done(session, campaign.id)
        return 0
    size = settings.send_batch_size
    async with sessionmaker() as session:
        batches = await repository.due_batches(session, campaign, size, due_by=at)
    enqueued = 0
    for batch in await dispatch.needs_jobs(redis, campaign.id, batches):
        lo, hi = dispatch.batch_range(campaign.first_message_id, size, batch)
        job = await dispatch.enqueue_batch(
            redis, campaign.id, batch, lo, hi, defer_until=at, fence=fence, begin=begin
        )
        if job is None:
            break  # the round lost its lock: the current holder does the rest
        enqueued += 1
    if not batches:
        async with transaction(sessionmaker) as session:
            await repository.complete_if_done(session, campaign.id)
    return enqueued


async def send_batch(
    ctx: dict[str, Any], campaign_id: int, batch: int, lo: int, hi: int, begin: bool = False
) -> dict:
    """Send one id range of a campaign; re-enqueue itself for retries that come due later.

    ``begin``: queued ahead of a scheduled campaign's send_at; turn it ``sending`` first.
    """
    settings, sessionmaker, redis = _deps(ctx)
    if begin:
        async with transaction(sessionmaker) as session:
            await repository.begin_if_due(session, campaign_id)
    sender: Sender = ctx["sender"]
    hb_key = dispatch.heartbeat_key(campaign_id, batch)
    ttl = max(3, int(settings.lease_seconds))

    async def heartbeat() -> None:
        while True:
            with contextlib.suppress(Exception):
                await redis.set(hb_key, ctx.get("job_id", "?"), ex=ttl)
            await asyncio.sleep(ttl / 3)

    beating = asyncio.create_task(heartbeat())
    try:
        # every log line of the batch job carries the campaign id
        with structlog.contextvars.bound_contextvars(campaign_id=campaign_id, batch=batch):
            report = await sender.send_batch(campaign_id, lo, hi)
    finally:
        beating.cancel()
    if report.next_due is not None:
        when = max(report.next_due, datetime.now(UTC))
        async with sessionmaker() as session:
            campaign = await repository.get(session, campaign_id)
        if campaign is not None and campaign.status == "sending":
            await dispatch.enqueue_batch(redis, campaign_id, batch, lo, hi, defer_until=when)
        elif campaign is not None and campaign.status == "scheduled" and begin:
            # ran a hair before the database's clock reached send_at: once more then
            await dispatch.enqueue_batch(
                redis, campaign_id, batch, lo, hi, defer_until=when, begin=True
            )
        else:
            await dispatch.release(redis, campaign_id, batch)
    else:
        await dispatch.release(redis, campaign_id, batch)
        async with transaction(sessionmaker) as session:
            await repository.complete_if_done(session, campaign_id)
    return {"claimed": report.claimed, **report.outcomes}


class CampaignPauser:
    """The send path's :class:`~mailer.sending.service.Pauser`: pauses campaigns with the
    reason; the operator resumes them (``POST /v1/campaigns/{id}/resume``)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def pause_class(self, mail_class: str, reason: str, call_started: datetime) -> None:
        """SES refused the account or the class's configuration: pause its campaigns."""
        async with transaction(self.sessionmaker) as session:
            paused = await repository.pause_class(
                session, mail_class, f"SES: {reason}", call_started
            )
        if paused:
            log.warning("mail_class_paused", mail_class=mail_class, campaigns=paused, reason=reason)

    async def stop_campaign(self, campaign_id: int, reason: str, since: datetime) -> None:
        async with transaction(self.sessionmaker) as session:
            stopped = await repository.pause_sending(session, campaign_id, reason, since)
        if stopped:
            log.warning("campaign_error_rate_stop", campaign_id=campaign_id, reason=reason)


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
        await dispatch_campaign(settings, sessionmaker, redis, campaign, fence)
    # transactional messages whose job was lost (their leases were released above)
    await requeue_lost(sessionmaker, redis, grace=max(5.0, 2 * settings.reconcile_interval_seconds))


RECONCILE_LOCK = "mailer:reconcile"


async def reconcile_forever(ctx: dict[str, Any]) -> None:
    """One reconcile round at a time across all workers (a fenced lock), one every
    ``reconcile_interval_seconds``: the lock lingers after a round until the next is due."""
    settings, sessionmaker, redis = _deps(ctx)
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
