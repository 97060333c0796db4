"""Transactional messages' SQL: insert with their idempotency keys, read, page, sweep."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, delete, insert, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import Contact, Event, IdempotencyKey, Message


async def lock_keys(session: AsyncSession, lock_ids: list[int]) -> None:
    """Serialise requests that carry the same idempotency key (for this transaction).

    Taken in ascending order, so two batches sharing keys never deadlock. A request that
    waits here sees the other's key and message once that one has committed.
    """
    for lock_id in sorted(set(lock_ids)):
        await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


_KEYS = text(
    """
    SELECT k.key, k.request_hash, k.message_id, m.status
      FROM idempotency_keys k JOIN messages m ON m.id = k.message_id
     WHERE k.api_key_id = :api_key_id AND k.key = ANY(CAST(:keys AS text[]))
    """
)


async def find_keys(session: AsyncSession, api_key_id: int, keys: list[str]) -> dict[str, Any]:
    """The stored keys among ``keys``: key → (request_hash, message_id, status)."""
    rows = await session.execute(_KEYS, {"api_key_id": api_key_id, "keys": keys})
    return {r.key: r for r in rows}


async def contact_ids(session: AsyncSession, emails: list[str]) -> dict[str, int]:
    """The contacts among the recipients (a recipient need not be one)."""
    rows = await session.execute(
        text("SELECT id, email FROM contacts WHERE email = ANY(CAST(:emails AS text[]))"),
        {"emails": emails},
    )
    return {r.email: r.id for r in rows}


# each message's contact (a recipient need not be one) found by the INSERT itself: no
# round trip of its own for the lookup
_INSERT_MESSAGES = (
    insert(Message)
    .values(
        contact_id=select(Contact.id)
        .where(Contact.email == bindparam("contact_email"))
        .scalar_subquery()
    )
    .returning(Message.id, sort_by_parameter_order=True)
)


async def insert_messages(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """Insert queued messages, each linked to the contact of its ``email`` if there is one;
    their ids, in the order of ``rows``."""
    if not rows:
        return []
    result = await session.execute(
        _INSERT_MESSAGES, [{**row, "contact_email": row["email"]} for row in rows]
    )
    return [r.id for r in result]


async def insert_keys(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if rows:
        await session.execute(insert(IdempotencyKey), rows)


async def get(session: AsyncSession, message_id: int) -> Message | None:
    """A transactional message (test sends of campaigns included); None for campaign mail."""
    return (
        await session.execute(
            select(Message).where(Message.id == message_id, Message.campaign_id.is_(None))
        )
    ).scalar_one_or_none()


async def events(session: AsyncSession, message_id: int, limit: int = 200) -> list[Event]:
    rows = await session.execute(
        select(Event)
        .where(Event.message_id == message_id)
        .order_by(Event.occurred_at, Event.id)
        .limit(limit)
    )
    return list(rows.scalars())


async def page(
    session: AsyncSession, to: str | None, status: str | None, before: int | None, limit: int
) -> list[Message]:
    """Newest first; ``before`` is the last id of the previous page."""
    query = select(Message).where(Message.campaign_id.is_(None))
    if to is not None:
        query = query.where(Message.email == to)
    if status is not None:
        query = query.where(Message.status == status)
    if before is not None:
        query = query.where(Message.id < before)
    rows = await session.execute(query.order_by(Message.id.desc()).limit(limit))
    return list(rows.scalars())


async def sweep_keys(session: AsyncSession, older_than_hours: float) -> int:
    """Forget idempotency keys older than ``older_than_hours``; how many went."""
    result = await session.execute(
        delete(IdempotencyKey).where(
            IdempotencyKey.created_at
            < text("now() - make_interval(secs => :secs)").bindparams(secs=older_than_hours * 3600)
        )
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# Transactional messages that are due but whose job was lost (a Redis flush, a worker that
# died holding it): queued for longer than ``grace`` seconds past their due time.
_LOST = text(
    """
    SELECT id FROM messages
     WHERE campaign_id IS NULL AND status = 'queued'
       AND next_attempt_at < now() - make_interval(secs => :grace)
     ORDER BY next_attempt_at
     LIMIT :limit
    """
)


async def lost(session: AsyncSession, grace: float, limit: int) -> list[int]:
    rows = await session.execute(_LOST, {"grace": grace, "limit": limit})
    return [r.id for r in rows]
