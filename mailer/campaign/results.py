"""A campaign's reports (links, providers, timeline, recipients export) and its retry.

Reports read rollups kept by the events worker (``repository``), never the events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailer.campaign import dispatch
from mailer.campaign import repository as campaigns
from mailer.campaign import service as campaign_service
from mailer.campaign.result_schemas import (
    LinkOut,
    LinkPage,
    ProviderPage,
    RetryOut,
    TimelineBucket,
    TimelinePage,
)
from mailer.db import after_commit
from mailer.engagement import results_repository as repo
from mailer.engagement.providers import mapping_params, provider_out
from mailer.errors import Conflict, NotFound
from mailer.models import Campaign
from mailer.models.suppression import scopes_for
from mailer.pagination import Page

# a campaign's failed messages may be retried while it is in one of these states: paused
# ones go out on resume, a completed campaign is sending again until they are done
RETRY_STATES = {"sending", "paused", "completed"}


async def _campaign(session: AsyncSession, campaign_id: int, lock: bool = False) -> Campaign:
    found = await campaigns.get(session, campaign_id, lock=lock)
    if found is None:
        raise NotFound(f"no campaign {campaign_id}")
    return found


async def links(session: AsyncSession, campaign_id: int, page: Page[str]) -> LinkPage:
    """The campaign's clicked links, by link."""
    await _campaign(session, campaign_id)
    rows, next_cursor = page.cut(
        await repo.links(session, campaign_id, page.last, page.fetch), key=lambda r: r.link
    )
    return LinkPage(
        items=[
            LinkOut(
                link=r.link,
                tags=r.tags,
                clicks=r.clicks,
                clickers=r.clickers,
                human_clickers=r.human_clickers,
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )


async def providers(session: AsyncSession, campaign_id: int, page: Page[str]) -> ProviderPage:
    """The campaign's feedback per mailbox provider, by provider name."""
    await _campaign(session, campaign_id)
    found = await repo.campaign_providers(
        session, campaign_id, mapping_params(), page.last, page.fetch
    )
    rows, next_cursor = page.cut(found, key=lambda r: r.provider)
    return ProviderPage(items=[provider_out(r) for r in rows], next_cursor=next_cursor)


# the last second Python's datetime holds: a cursor past it names no bucket
MAX_EPOCH = 253402300799


def _bucket_cursor(page: Page[int]) -> datetime | None:
    """A timeline cursor is the previous page's last bucket, in seconds since 1970."""
    if page.last is None:
        return None
    return datetime.fromtimestamp(min(page.last, MAX_EPOCH), UTC)


async def timeline(session: AsyncSession, campaign_id: int, page: Page[int]) -> TimelinePage:
    """Sends, deliveries, opens, clicks, bounces, complaints per 10 minutes, oldest first."""
    await _campaign(session, campaign_id)
    found = await repo.timeline(session, campaign_id, _bucket_cursor(page), page.fetch)
    rows, next_cursor = page.cut(found, key=lambda r: int(r.bucket.timestamp()))
    return TimelinePage(
        items=[
            TimelineBucket(
                start=r.bucket,
                sent=r.sent,
                delivered=r.delivered,
                opens=r.opens,
                clicks=r.clicks,
                bounced=r.bounced,
                complained=r.complained,
            )
            for r in rows
        ],
        next_cursor=next_cursor,
    )


RECIPIENT_COLUMNS = (
    "email",
    "status",
    "sent_at",
    "failure_reason",
    "retried_at",
    "opens",
    "human_opens",
    "first_open_at",
    "clicks",
    "human_clicks",
    "first_click_at",
)
CHUNK = 5_000  # message ids per COPY: the first bytes come after one of them


async def recipients_csv(
    engine: AsyncEngine, campaign_id: int, span: tuple[int, int] | None
) -> AsyncIterator[bytes]:
    """The campaign's recipients as CSV: the header, then one COPY per ``CHUNK`` ids of
    its id span (each its own short statement: an export of a million rows holds no
    snapshot for long). An erased contact's message has no address: an empty ``email``."""
    yield (",".join(RECIPIENT_COLUMNS) + "\r\n").encode()
    if span is None:
        return
    first, last = span
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        for lo in range(first, last + 1, CHUNK):
            chunk = await repo.copy_recipients(driver, campaign_id, lo, min(lo + CHUNK, last + 1))
            if chunk:
                yield chunk


async def export_span(session: AsyncSession, campaign_id: int) -> tuple[int, int] | None:
    """The campaign's message id span (None: no audience yet); 404 when unknown."""
    campaign = await _campaign(session, campaign_id)
    if campaign.first_message_id is None or campaign.last_message_id is None:
        return None
    return campaign.first_message_id, campaign.last_message_id


async def retry(session: AsyncSession, redis: ArqRedis, campaign_id: int) -> RetryOut:
    """Queue the campaign's retryable failed messages again, each once (repository
    ``RETRYABLE``). The campaign's row lock makes calls at the same time one after the
    other: the second finds nothing left to retry."""
    campaign = await _campaign(session, campaign_id, lock=True)
    if campaign.status not in RETRY_STATES:
        raise Conflict(
            f"cannot retry the failed messages of a campaign that is {campaign.status}",
            [{"status": campaign.status, "action": "retry"}],
        )
    retried = await repo.retry_failed(
        session, campaign_id, scopes_for(campaign.mail_class), campaign.mail_class == "marketing"
    )
    if retried:
        if campaign.status == "completed":
            campaign.status = "sending"
            campaign.finished_at = None
        if campaign.status == "sending":
            after_commit(session, lambda: dispatch.enqueue_start(redis, campaign_id))
        await session.flush()
    return RetryOut(retried=retried, campaign=await campaign_service.get(session, campaign_id))
