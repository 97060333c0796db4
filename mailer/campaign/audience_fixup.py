"""Starting a campaign: its audience fixed once, one message per eligible contact of its
segment (and topic), an A/B test's share split among its variants."""

from __future__ import annotations

from datetime import UTC, datetime

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.audience import service as audience
from mailer.audience.filters import compile_filter
from mailer.campaign import ab_tests as ab
from mailer.campaign import repository, topics
from mailer.campaign.service import start_after_commit, start_time
from mailer.models import Campaign


async def start(
    session: AsyncSession,
    redis: ArqRedis,
    campaign_id: int,
    *,
    connections: int = 1,
    part_min: int = 50_000,
) -> Campaign | None:
    """Fix the audience (once) of a campaign that is sending, or scheduled within
    ``START_LEAD`` of its send_at (or past it: then it is turned ``sending``); the
    campaign, or None when there is nothing to hand out. Asked earlier (clocks differ by
    a few ms), it is asked again at the right time. ``connections``, ``part_min``: see
    :func:`repository.fix_audience`."""
    campaign = await repository.get(session, campaign_id, lock=True)
    if campaign is None:
        return None
    if campaign.status == "scheduled":
        now = datetime.now(UTC)
        start_at = start_time(campaign.send_at)
        if start_at is not None and start_at > now:
            start_after_commit(session, redis, campaign_id, at=start_at)
            return None
        if campaign.send_at is None or campaign.send_at <= now:
            campaign.status = "sending"
            campaign.started_at = campaign.started_at or now
        elif campaign.audience_fixed_at is None:
            await _fix_segment(session, campaign, connections, part_min)
            await session.flush()
        if campaign.status == "scheduled":
            return campaign
    return await _fix_audience(session, campaign, connections, part_min)


async def fix_audience(
    session: AsyncSession, campaign_id: int, *, connections: int = 1, part_min: int = 50_000
) -> Campaign | None:
    """Fix the audience of a sending campaign once; None when it is not sending."""
    campaign = await repository.get(session, campaign_id, lock=True)
    return (
        None if campaign is None else await _fix_audience(session, campaign, connections, part_min)
    )


async def _fix_audience(
    session: AsyncSession, campaign: Campaign, connections: int, part_min: int
) -> Campaign | None:
    if campaign.status != "sending":
        return None
    if campaign.audience_fixed_at is None:
        await _fix_segment(session, campaign, connections, part_min)
    await session.flush()
    return campaign


async def _fix_segment(
    session: AsyncSession, campaign: Campaign, connections: int, part_min: int
) -> None:
    """The campaign's messages, one per eligible contact of its segment."""
    segment = await audience.get(session, campaign.segment_id)
    await repository.fix_audience(
        session,
        campaign,
        topics.narrow(compile_filter(segment.filter), campaign.topic_id),
        connections=connections,
        part_min=part_min,
    )
    await ab.split(session, campaign)  # an A/B test: its share gets variants, the rest waits
