"""Campaign jobs (arq): plain ``async def f(ctx, ...)``, ids not objects, safe to run twice."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any

import structlog
from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.campaign import audience_fixup, dispatch, repository
from mailer.config import Settings
from mailer.db import transaction
from mailer.models import Campaign
from mailer.sending.sender import Sender

log = structlog.get_logger(__name__)


def _deps(ctx: dict[str, Any]) -> tuple[Settings, async_sessionmaker[AsyncSession], ArqRedis]:
    return ctx["settings"], ctx["sessionmaker"], ctx["redis"]


async def start_campaign(ctx: dict[str, Any], campaign_id: int) -> int:
    """Fix the audience (once) and hand out the work; the number of jobs enqueued."""
    settings, sessionmaker, redis = _deps(ctx)
    async with transaction(sessionmaker) as session:
        campaign = await audience_fixup.start(
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
        await sender.plans.for_campaign(campaign.id)  # compile its template before the first batch
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
            report = await sender.send_range(campaign_id, lo, hi)
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
    """The send path's :class:`~mailer.sending.sender.Pauser`: pauses campaigns with the
    reason; the operator resumes them (``POST /v1/campaigns/{id}/resume``)."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self.sessionmaker = sessionmaker

    async def pause_class(self, mail_class: str, reason: str, call_started: datetime) -> None:
        """SES refused the account or the class's configuration: pause its campaigns."""
        async with transaction(self.sessionmaker) as session:
            paused = await repository.pause(
                session,
                f"SES: {reason}",
                mail_class=mail_class,
                unless_resumed_after=call_started,
            )
        if paused:
            log.warning("mail_class_paused", mail_class=mail_class, campaigns=paused, reason=reason)

    async def stop_campaign(self, campaign_id: int, reason: str, since: datetime) -> None:
        async with transaction(self.sessionmaker) as session:
            stopped = await repository.pause(
                session, reason, campaign_id=campaign_id, unless_resumed_after=since
            )
        if stopped:
            log.warning("campaign_error_rate_stop", campaign_id=campaign_id, reason=reason)
