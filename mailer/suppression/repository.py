"""Suppressions and unsubscribes: the SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import Suppression


async def get(session: AsyncSession, email: str) -> Suppression | None:
    return await session.get(Suppression, email)


async def put(
    session: AsyncSession, email: str, reason: str, scope: str
) -> tuple[Suppression, bool]:
    """Create or replace a manual suppression; (row, created). A person may narrow a scope."""
    inserted = (
        pg_insert(Suppression)
        .values(email=email, reason=reason, scope=scope, source="manual")
        .on_conflict_do_update(
            index_elements=["email"], set_={"reason": reason, "scope": scope, "source": "manual"}
        )
        .returning(Suppression, text("(xmax = 0) AS created"))
    )
    row = (await session.execute(inserted)).one()
    return row[0], bool(row[1])


async def remove(session: AsyncSession, email: str) -> bool:
    result = await session.execute(delete(Suppression).where(Suppression.email == email))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def page(
    session: AsyncSession,
    after: str | None,
    limit: int,
    reason: str | None,
    scope: str | None,
    source: str | None,
) -> list[Suppression]:
    query = select(Suppression).order_by(Suppression.email).limit(limit)
    if after is not None:
        query = query.where(Suppression.email > after)
    if reason is not None:
        # reasons carry details ("permanent bounce: General"): match their beginning
        escaped = reason.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Suppression.reason.ilike(f"{escaped}%", escape="\\"))
    if scope is not None:
        query = query.where(Suppression.scope == scope)
    if source is not None:
        query = query.where(Suppression.source == source)
    return list((await session.execute(query)).scalars())


# One statement, as the feedback loop's: the unsubscribe event is stored once per message
# (dedup key), and only a newly stored one counts in the campaign's `unsubscribed`; the
# contact is unsubscribed and the address suppressed for marketing (only ever widened:
# an existing suppression stays as it is), so a repeat changes nothing.
_UNSUBSCRIBE = text(
    """
    WITH m AS (
        SELECT id, campaign_id, email, mail_class, region FROM messages WHERE id = :id
    ),
    ev AS (
        INSERT INTO events (message_id, campaign_id, email, mail_class, region, type,
                            subtype, occurred_at, data, dedup_key)
        SELECT id, campaign_id, email, mail_class, region, 'unsubscribe', :how, now(),
               CAST(:data AS jsonb), 'unsubscribe:' || id
          FROM m
        ON CONFLICT (dedup_key) DO NOTHING
        RETURNING campaign_id, email
    ),
    contact AS (
        UPDATE contacts c SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
          FROM m WHERE c.email = m.email AND c.status = 'subscribed'
        RETURNING c.id
    ),
    contact_recorded AS (
        INSERT INTO contact_status_changes (contact_id, status, source)
        SELECT id, 'unsubscribed', 'unsubscribe_link' FROM contact
    ),
    suppressed AS (
        INSERT INTO suppressions (email, reason, scope, source)
        SELECT email, 'unsubscribed', 'marketing', 'unsubscribe' FROM m WHERE email <> ''
        ON CONFLICT (email) DO NOTHING
    ),
    counted AS (
        UPDATE campaign_stats s SET unsubscribed = s.unsubscribed + 1
          FROM ev WHERE s.campaign_id = ev.campaign_id
    )
    SELECT (SELECT count(*) FROM m) AS found, (SELECT count(*) FROM ev) AS new
    """
)


async def unsubscribe(
    session: AsyncSession, message_id: int, how: str, data: str
) -> tuple[bool, bool]:
    """(the message exists, this was its first unsubscribe)."""
    row: Any = (
        await session.execute(_UNSUBSCRIBE, {"id": message_id, "how": how, "data": data})
    ).one()
    return bool(row.found), bool(row.new)


async def message_exists(session: AsyncSession, message_id: int) -> bool:
    found = await session.execute(text("SELECT 1 FROM messages WHERE id = :id"), {"id": message_id})
    return found.first() is not None
