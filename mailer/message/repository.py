"""Transactional messages' SQL: insert with their idempotency keys, read, page, sweep."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import Event, IdempotencyKey, Message
from mailer.types import MAX_ID

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


_COLUMNS = (
    "email",
    "from_address",
    "reply_to",
    "mail_class",
    "template_version_id",
    "subject",
    "html",
    "text_body",
    "data",
    "tags",
    "headers",
    "test_campaign_id",
    "idempotency_key",
    "request_hash",
)
_JSONB = frozenset({"data", "tags", "headers"})

# Any number of messages, and the idempotency keys of those that carry one, in one
# statement of one round trip: the rows arrive as one array per column, so the statement
# and its parameters are the same size whatever the count. Ids are drawn first (``input``
# is materialised once: it is volatile), so that each row's id is answered in the order of
# ``rows``. A key stored already (or being stored by a transaction in flight, which ON
# CONFLICT waits for) is not stored again, and its row's message is not inserted:
# ``created`` is false for it, and the caller reads the stored key. No lock is needed: the
# key's primary key serialises concurrent requests that carry it. Each message's contact
# (a recipient need not be one) is found here too.
_INSERT_MESSAGES = text(
    """
    WITH input AS (
        SELECT nextval(pg_get_serial_sequence('messages', 'id')) AS id, u.*
          FROM unnest(
                 CAST(:email AS text[]), CAST(:from_address AS text[]),
                 CAST(:reply_to AS text[]), CAST(:mail_class AS text[]),
                 CAST(:template_version_id AS bigint[]), CAST(:subject AS text[]),
                 CAST(:html AS text[]), CAST(:text_body AS text[]), CAST(:data AS text[]),
                 CAST(:tags AS text[]), CAST(:headers AS text[]),
                 CAST(:test_campaign_id AS bigint[]), CAST(:idempotency_key AS text[]),
                 CAST(:request_hash AS text[])
               ) WITH ORDINALITY AS u(
                 email, from_address, reply_to, mail_class, template_version_id, subject,
                 html, text_body, data, tags, headers, test_campaign_id, idempotency_key,
                 request_hash, ord
               )
    ), keys_in AS (
        INSERT INTO idempotency_keys (api_key_id, key, request_hash, message_id)
        SELECT :api_key_id, i.idempotency_key, i.request_hash, i.id
          FROM input i
         WHERE i.idempotency_key IS NOT NULL
        ON CONFLICT DO NOTHING
        RETURNING message_id
    ), messages_in AS (
        INSERT INTO messages (
            id, contact_id, email, from_address, reply_to, mail_class, template_version_id,
            subject, html, text, data, tags, headers, test_campaign_id
        )
        SELECT i.id, (SELECT c.id FROM contacts c WHERE c.email = i.email), i.email,
               i.from_address, i.reply_to, i.mail_class, i.template_version_id, i.subject,
               i.html, i.text_body, CAST(i.data AS jsonb), CAST(i.tags AS jsonb),
               CAST(i.headers AS jsonb), i.test_campaign_id
          FROM input i
         WHERE i.idempotency_key IS NULL OR i.id IN (SELECT message_id FROM keys_in)
        RETURNING id
    )
    SELECT i.id, i.id IN (SELECT id FROM messages_in) AS created
      FROM input i
     ORDER BY i.ord
    """
)


async def insert_messages(
    session: AsyncSession, rows: list[dict[str, Any]], api_key_id: int | None = None
) -> list[tuple[int, bool]]:
    """Insert queued messages, each linked to the contact of its ``email`` if there is
    one, with the idempotency key (``idempotency_key``, ``request_hash``) of each row that
    has one, held by ``api_key_id``. For each row, in the order of ``rows``: its message
    id and whether it was inserted (False: its key was stored already, nothing was)."""
    if not rows:
        return []
    params: dict[str, Any] = {"api_key_id": api_key_id}
    for column in _COLUMNS:
        values = [row.get(column) for row in rows]
        if column in _JSONB:
            values = [None if v is None else json.dumps(v) for v in values]
        params[column] = values
    result = await session.execute(_INSERT_MESSAGES, params)
    return [(r.id, r.created) for r in result]


async def get(
    session: AsyncSession, message_id: int, campaign_id: int | None = None
) -> Message | None:
    """A transactional message (test sends of campaigns included) or, with
    ``campaign_id``, a message of that campaign; None for anything else."""
    of = (
        Message.campaign_id.is_(None) if campaign_id is None else Message.campaign_id == campaign_id
    )
    return (
        await session.execute(select(Message).where(Message.id == message_id, of))
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


# A contact's messages, newest first, below ``before``: its campaign mail through the unique
# (campaign_id, contact_id) key, one probe per launched campaign (an index on contact_id
# alone would add a key to every row of every audience fix-up, its hottest insert), and
# its transactional mail (test sends included) through the (email, id) index of
# transactional mail. Campaigns are few next to messages; a campaign whose first message
# is not below ``before`` is skipped without a probe.
_OF_CONTACT = text(
    """
    SELECT m.* FROM (
        SELECT m.*
          FROM campaigns c
          CROSS JOIN LATERAL (
                -- LIMIT 1 (the key holds one at most) keeps it a probe per campaign:
                -- pulled up into a join, it may be planned as a walk of the whole key
                SELECT * FROM messages m
                 WHERE m.campaign_id = c.id AND m.contact_id = :contact_id
                 LIMIT 1
               ) m
         WHERE c.first_message_id IS NOT NULL AND c.first_message_id < :before
           AND m.id < :before
        UNION ALL
        (SELECT * FROM messages m
          WHERE m.campaign_id IS NULL AND m.email = :email AND m.id < :before
          ORDER BY m.id DESC
          LIMIT :limit)
    ) m
    ORDER BY m.id DESC
    LIMIT :limit
    """
)


async def of_contact(
    session: AsyncSession, contact_id: int, email: str, before: int | None, limit: int
) -> list[Message]:
    """A contact's campaign and transactional messages, newest first; ``before`` is the
    last id of the previous page."""
    params = {
        "contact_id": contact_id,
        "email": email,
        "before": MAX_ID if before is None else before,
        "limit": limit,
    }
    rows = await session.execute(select(Message).from_statement(_OF_CONTACT), params)
    return list(rows.scalars())


# The events of a page of messages, the first ``per_message`` of each in the order they
# happened (a message opened a thousand times shows its first opens, not a thousand rows).
_EVENTS_OF = text(
    """
    SELECT e.*
      FROM unnest(CAST(:ids AS bigint[])) AS i(id)
      CROSS JOIN LATERAL (
            SELECT * FROM events e
             WHERE e.message_id = i.id
             ORDER BY e.occurred_at, e.id
             LIMIT :per_message
           ) e
    """
)


async def events_of(
    session: AsyncSession, message_ids: list[int], per_message: int
) -> dict[int, list[Event]]:
    """message id → its first ``per_message`` events, oldest first."""
    found: dict[int, list[Event]] = {i: [] for i in message_ids}
    if message_ids:
        rows = await session.execute(
            select(Event).from_statement(_EVENTS_OF),
            {"ids": message_ids, "per_message": per_message},
        )
        for event in rows.scalars():
            found[event.message_id or 0].append(event)
    return found


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
