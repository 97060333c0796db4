"""Campaign SQL. The audience is fixed by INSERT … SELECT; counters live in campaign_stats."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    delete,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession

from mailer.audience.repository import eligible
from mailer.models import Campaign, CampaignStats, Contact, Message, Suppression, TemplateVersion
from mailer.models.suppression import scopes_for


async def insert_campaign(session: AsyncSession, **values: Any) -> Campaign:
    campaign = Campaign(**values)
    session.add(campaign)
    await session.flush()
    session.add(CampaignStats(campaign_id=campaign.id))
    await session.flush()
    return campaign


async def topic_exists(session: AsyncSession, topic_id: int) -> bool:
    found = await session.execute(text("SELECT 1 FROM topics WHERE id = :id"), {"id": topic_id})
    return found.first() is not None


async def get(session: AsyncSession, campaign_id: int, *, lock: bool = False) -> Campaign | None:
    query = select(Campaign).where(Campaign.id == campaign_id)
    if lock:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def get_with_stats(
    session: AsyncSession, campaign_id: int
) -> tuple[Campaign, CampaignStats, int] | None:
    row = (
        await session.execute(
            select(Campaign, CampaignStats, TemplateVersion.version)
            .join(CampaignStats, CampaignStats.campaign_id == Campaign.id)
            .join(TemplateVersion, TemplateVersion.id == Campaign.template_version_id)
            .where(Campaign.id == campaign_id)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1], int(row[2]))


async def page(
    session: AsyncSession, status: str | None, after: int, limit: int
) -> list[tuple[Campaign, CampaignStats, int]]:
    """Campaigns with ids after ``after``, by id, with their numbers and version."""
    query = (
        select(Campaign, CampaignStats, TemplateVersion.version)
        .join(CampaignStats, CampaignStats.campaign_id == Campaign.id)
        .join(TemplateVersion, TemplateVersion.id == Campaign.template_version_id)
        .where(Campaign.id > after)
    )
    if status is not None:
        query = query.where(Campaign.status == status)
    rows = await session.execute(query.order_by(Campaign.id).limit(limit))
    return [(row[0], row[1], int(row[2])) for row in rows]


async def delete_campaign(session: AsyncSession, campaign_id: int) -> None:
    """A draft has no messages of its own; its numbers go with it (ON DELETE CASCADE)."""
    await session.execute(delete(Campaign).where(Campaign.id == campaign_id))


async def fix_audience(
    session: AsyncSession,
    campaign: Campaign,
    where: ColumnElement[bool],
    *,
    connections: int = 1,
    part_min: int = 50_000,
) -> tuple[int, int]:
    """Insert one message per eligible contact of the segment; (recipients, suppressed).

    Set-based: INSERT … SELECT, each counting its RETURNING in the same statement; a
    read-only count gives the contacts of the segment left out as suppressed. The
    campaign's messages span [first_message_id, last_message_id] and work is handed out
    as id ranges of that span; no ORDER BY, as the ranges need no particular order and
    sorting a million rows spills to disk.

    One INSERT uses one core: with ``connections`` > 1 and at least ``part_min``
    contacts per part, the contacts are split into id ranges inserted at the same time,
    each on its own connection and in its own transaction, all reading the snapshot of
    the caller's transaction (exported), so the audience is the same set a single
    statement would have read. The parts commit on their own, but their rows are inert
    until the caller's transaction (which holds the campaign's row lock) commits
    ``audience_fixed_at`` with the id span: no batch is handed out before, and the
    reconciler starts the campaign again. A fix-up that did not finish (a crash, a
    failed part) is done again from the start: its leftover rows are deleted first. The
    unique (campaign_id, contact_id) key still refuses a second message for a contact.
    """
    bounds = (await session.execute(select(func.min(Contact.id), func.max(Contact.id)))).one()
    ranges = _split(bounds[0], bounds[1], connections, part_min)
    if len(ranges) <= 1:
        await session.execute(_DROP_LEFTOVERS, {"id": campaign.id})
        recipients, first, last = await _insert_audience(session, campaign, where)
    else:
        bind = session.bind
        assert isinstance(bind, AsyncEngine), "a parallel fix-up needs the session's engine"
        async with bind.connect() as conn:
            # committed before the parts start: their unique checks must not wait on it
            await conn.execute(_DROP_LEFTOVERS, {"id": campaign.id})
            await conn.commit()
        snapshot = (await session.execute(text("SELECT pg_export_snapshot()"))).scalar_one()
        results = await asyncio.gather(
            *(_insert_part(bind, snapshot, campaign, where, lo, hi) for lo, hi in ranges),
            return_exceptions=True,
        )
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise failed[0]
        spans = [r for r in results if not isinstance(r, BaseException)]
        recipients = sum(r[0] for r in spans)
        firsts = [r[1] for r in spans if r[1] is not None]
        lasts = [r[2] for r in spans if r[2] is not None]
        first = min(firsts) if firsts else None
        last = max(lasts) if lasts else None
    scopes = scopes_for(campaign.mail_class)
    is_suppressed = (
        select(Suppression.email)
        .where(Suppression.email == Contact.email, Suppression.scope.in_(scopes))
        .exists()
    )
    left_out = select(func.count()).select_from(Contact).where(where, is_suppressed)
    if campaign.mail_class == "marketing":
        left_out = left_out.where(Contact.status == "subscribed")
    suppressed = int((await session.execute(left_out)).scalar_one())
    campaign.first_message_id = first
    campaign.last_message_id = last
    campaign.audience_fixed_at = datetime.now(UTC)
    await session.execute(
        update(CampaignStats)
        .where(CampaignStats.campaign_id == campaign.id)
        .values(recipients=recipients, queued=recipients, suppressed=suppressed)
    )
    return recipients, suppressed


# Messages of a campaign whose audience is not fixed yet: what a fix-up that did not
# finish left behind (parts that committed). Nothing sends them: the campaign has no id
# span, so no batch job, until a fix-up commits it.
_DROP_LEFTOVERS = text("DELETE FROM messages WHERE campaign_id = :id")

# the exported snapshot's id, spelt into SET TRANSACTION SNAPSHOT (which takes no parameter)
_SNAPSHOT_ID = re.compile(r"[0-9A-F]+-[0-9A-F]+-[0-9]+")


def _split(
    lo: int | None, hi: int | None, connections: int, part_min: int
) -> list[tuple[int, int]]:
    """Contact id ranges [lo, hi] for the parts: equal widths, ``part_min`` ids at least."""
    if lo is None or hi is None:
        return []
    parts = max(1, min(connections, (hi - lo + 1) // max(part_min, 1)))
    width = -(-(hi - lo + 1) // parts)
    return [(a, min(a + width - 1, hi)) for a in range(lo, hi + 1, width)]


async def _insert_part(
    engine: AsyncEngine,
    snapshot: str,
    campaign: Campaign,
    where: ColumnElement[bool],
    lo: int,
    hi: int,
) -> tuple[int, int | None, int | None]:
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise ValueError(f"unexpected snapshot id {snapshot!r}")
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            await conn.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
            part = and_(where, Contact.id.between(lo, hi))
            return await _insert_audience(conn, campaign, part)


async def _insert_audience(
    session: AsyncSession | AsyncConnection, campaign: Campaign, where: ColumnElement[bool]
) -> tuple[int, int | None, int | None]:
    """One INSERT … SELECT: (messages inserted, their lowest id, their highest id).

    No ON CONFLICT: the fix-up runs once per campaign under its row lock, and a
    speculative insertion per row (an extra index probe and WAL record) cost a third of
    the statement; the unique key still refuses a duplicate, with an error."""
    columns = ["campaign_id", "contact_id", "email", "mail_class"]
    values: list[Any] = [
        literal(campaign.id),
        Contact.id,
        Contact.email,
        literal(campaign.mail_class),
    ]
    if campaign.send_at is not None and campaign.send_at > datetime.now(UTC):
        # fixed a little ahead of a scheduled start: no message is due before send_at
        columns.append("next_attempt_at")
        values.append(literal(campaign.send_at))
    source = select(*values).where(where, eligible(campaign.mail_class))
    inserted = insert(Message).from_select(columns, source).returning(Message.id).cte("inserted")
    span = (
        await session.execute(
            select(func.count(), func.min(inserted.c.id), func.max(inserted.c.id))
        )
    ).one()
    return int(span[0]), span[1], span[2]


_COMPLETE = text(
    """
    UPDATE campaigns SET status = 'completed', finished_at = now()
     WHERE id = :id AND status = 'sending' AND audience_fixed_at IS NOT NULL
       AND NOT EXISTS (
           SELECT 1 FROM messages
            WHERE campaign_id = :id AND status IN ('queued', 'claimed', 'sending'))
    RETURNING id
    """
)


async def complete_if_done(session: AsyncSession, campaign_id: int) -> bool:
    return (await session.execute(_COMPLETE, {"id": campaign_id})).first() is not None


# Ranges of message ids (batch numbers) with due, queued work: what the reconciler
# makes sure some job will pick up. A loose index scan over (campaign_id, status, id):
# one index probe per range that has work, jumping from each range to the next, so its
# cost follows the number of ranges, not of queued rows (a GROUP BY would read every
# queued row of a million-recipient campaign every round).
_DUE_BATCHES = text(
    """
    WITH RECURSIVE due(id) AS (
        (SELECT id FROM messages
          WHERE campaign_id = :id AND status = 'queued'
            AND next_attempt_at <= COALESCE(CAST(:due_by AS timestamptz), now())
          ORDER BY id LIMIT 1)
        UNION ALL
        SELECT (SELECT m.id FROM messages m
                 WHERE m.campaign_id = :id AND m.status = 'queued'
                   AND m.next_attempt_at <= COALESCE(CAST(:due_by AS timestamptz), now())
                   AND m.id >= :first + ((due.id - :first) / :size + 1) * :size
                 ORDER BY m.id LIMIT 1)
          FROM due WHERE due.id IS NOT NULL
    )
    SELECT (id - :first) / :size AS batch FROM due WHERE id IS NOT NULL
    """
)


async def due_batches(
    session: AsyncSession, campaign: Campaign, size: int, due_by: datetime | None = None
) -> list[int]:
    """Batch numbers with queued work due now (or by ``due_by``)."""
    rows = await session.execute(
        _DUE_BATCHES,
        {"id": campaign.id, "first": campaign.first_message_id, "size": size, "due_by": due_by},
    )
    return [int(r.batch) for r in rows]


_CANCEL_QUEUED = text(
    """
    WITH locked AS MATERIALIZED (
        -- id order, as every statement of the send path locks messages: no deadlock
        SELECT id FROM messages
         WHERE campaign_id = :id AND status IN ('queued', 'claimed')
         ORDER BY id FOR UPDATE
    ), moved AS (
        UPDATE messages m SET status = 'cancelled', lease_token = NULL, lease_until = NULL
          FROM locked l
         WHERE m.id = l.id AND m.status IN ('queued', 'claimed')
        RETURNING 1
    )
    UPDATE campaign_stats
       SET queued = GREATEST(queued - (SELECT count(*) FROM moved), 0),
           cancelled = cancelled + (SELECT count(*) FROM moved)
     WHERE campaign_id = :id
    """
)


async def cancel_queued(session: AsyncSession, campaign_id: int) -> None:
    await session.execute(_CANCEL_QUEUED, {"id": campaign_id})


async def campaigns_in(session: AsyncSession, statuses: list[str]) -> list[Campaign]:
    rows = await session.execute(select(Campaign).where(Campaign.status.in_(statuses)))
    return list(rows.scalars())


_DUE_SCHEDULED = text(
    """
    UPDATE campaigns SET status = 'sending', started_at = coalesce(started_at, now())
     WHERE status = 'scheduled' AND send_at <= now()
    RETURNING id
    """
)


_BEGIN_DUE = text(
    """
    UPDATE campaigns SET status = 'sending', started_at = coalesce(started_at, now())
     WHERE id = :id AND status = 'scheduled' AND send_at <= now()
    """
)


async def begin_if_due(session: AsyncSession, campaign_id: int) -> None:
    """Turn a scheduled campaign ``sending`` once its send_at has come."""
    await session.execute(_BEGIN_DUE, {"id": campaign_id})


async def start_due_scheduled(session: AsyncSession) -> list[int]:
    return [int(r.id) for r in await session.execute(_DUE_SCHEDULED)]


# the states a pause applies to, for every caller (operator, auto-pause, the send path)
PAUSABLE = ("scheduled", "sending")


async def pause(
    db: AsyncSession | AsyncConnection,
    reason: str,
    *,
    campaign_id: int | None = None,
    mail_class: str | None = None,
    unless_resumed_after: datetime | None = None,
) -> list[int]:
    """The one way campaigns are paused, by the operator, the auto-pause and the send
    path's stops: one campaign (``campaign_id``) or every campaign of ``mail_class`` that is
    scheduled or sending turns ``paused`` with ``reason``. With ``unless_resumed_after``, a
    campaign resumed after that moment is left alone: the stop was decided on outcomes
    from before the resume. The ids paused (none: nothing was pausable)."""
    which: list[ColumnElement[bool]] = [Campaign.status.in_(PAUSABLE)]
    if campaign_id is not None:
        which.append(Campaign.id == campaign_id)
    if mail_class is not None:
        which.append(Campaign.mail_class == mail_class)
    if campaign_id is None and mail_class is None:
        raise ValueError("pause needs a campaign or a mail class")
    if unless_resumed_after is not None:
        which.append(Campaign.resumed_at.is_(None) | (Campaign.resumed_at < unless_resumed_after))
    rows = await db.execute(
        update(Campaign)
        .where(*which)
        .values(status="paused", paused_reason=reason)
        .returning(Campaign.id)
        .execution_options(synchronize_session=False)
    )
    return [int(r[0]) for r in rows]


async def messages_page(
    session: AsyncSession, campaign_id: int, status: str | None, after: int, limit: int
) -> list[Message]:
    query = select(Message).where(Message.campaign_id == campaign_id, Message.id > after)
    if status is not None:
        query = query.where(Message.status == status)
    query = query.order_by(Message.id).limit(limit)
    return list((await session.execute(query)).scalars())
