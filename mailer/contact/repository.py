"""Contacts, their status history, erasure and CSV imports: the SQL."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import Contact, ContactStatusChange, Suppression
from mailer.models.contact import CONTACT_STATUSES, STATUS_SOURCES
from mailer.models.subscription import SET_TOPICS_SQL, Consent, set_topics_params
from mailer.models.suppression import is_suppressed

# xmax = 0 tells an inserted row from an updated one in the same statement
_UPSERT = text(
    """
    INSERT INTO contacts (email, attributes, tags)
    VALUES (:email, CAST(:attributes AS jsonb), :tags)
    ON CONFLICT (email) DO UPDATE
       SET attributes = EXCLUDED.attributes, tags = EXCLUDED.tags, updated_at = now()
    RETURNING id, (xmax = 0) AS inserted
    """
)


async def upsert(
    session: AsyncSession, email: str, attributes: dict[str, Any], tags: list[str]
) -> tuple[int, bool]:
    row = (
        await session.execute(
            _UPSERT, {"email": email, "attributes": json.dumps(attributes), "tags": tags}
        )
    ).one()
    return int(row.id), bool(row.inserted)


_SET_TOPICS = text(SET_TOPICS_SQL)


async def set_topics(
    session: AsyncSession, contact_id: int, topics: Mapping[int, str]
) -> list[int]:
    """Set the contact's subscriptions to topics (source ``api``, each change with its
    consent record; the one statement of ``mailer.models.subscription``); nothing and the
    unknown ids when a topic does not exist."""
    known = await session.execute(
        text("SELECT id FROM topics WHERE id = ANY(:ids)"), {"ids": list(topics)}
    )
    missing = sorted(set(topics) - {int(r[0]) for r in known})
    if not missing:
        changes = [(contact_id, t, status) for t, status in topics.items()]
        await session.execute(_SET_TOPICS, set_topics_params(changes, Consent("api")))
    return missing


# A merge, not a replacement: attributes given are set, those given as null removed, tags
# added and removed; tags stay sorted and distinct (as upsert stores them).
_PATCH = text(
    """
    UPDATE contacts
       SET attributes = (attributes || CAST(:set AS jsonb)) - CAST(:unset AS text[]),
           tags = ARRAY(
               SELECT DISTINCT t FROM unnest(tags || CAST(:add AS text[])) AS t
                WHERE t <> ALL(CAST(:remove AS text[]))
                ORDER BY t
           ),
           updated_at = now()
     WHERE email = :email
    RETURNING id
    """
)


async def patch(
    session: AsyncSession,
    email: str,
    attributes: dict[str, Any],
    tags_add: list[str],
    tags_remove: list[str],
) -> bool:
    """Merge a change into the contact at ``email``; False when there is none."""
    row = (
        await session.execute(
            _PATCH,
            {
                "email": email,
                "set": json.dumps({k: v for k, v in attributes.items() if v is not None}),
                "unset": [k for k, v in attributes.items() if v is None],
                "add": tags_add,
                "remove": tags_remove,
            },
        )
    ).first()
    return row is not None


async def by_emails(session: AsyncSession, emails: list[str]) -> dict[str, Contact]:
    """The contacts at these (normalised) addresses, by address."""
    if not emails:
        return {}
    rows = await session.execute(select(Contact).where(Contact.email.in_(emails)))
    return {c.email: c for c in rows.scalars()}


async def page(
    session: AsyncSession, where: ColumnElement[bool], after: int, limit: int
) -> list[tuple[Contact, bool]]:
    """Contacts matching ``where`` with ids after ``after``, by id, with their suppression."""
    suppressed = select(Suppression.email).where(Suppression.email == Contact.email).exists()
    rows = await session.execute(
        select(Contact, suppressed)
        .where(where, Contact.id > after)
        .order_by(Contact.id)
        .limit(limit)
    )
    return [(row[0], bool(row[1])) for row in rows]


# --- status changes --------------------------------------------------------------------------

# Set the status of contacts by address and record each real change with its source, in
# one statement (set-based: a complaint batch or an unsubscribe is one call). Contacts
# already in that status are left alone and not recorded again.
STATUS_CHANGE_SQL = """
    WITH changed AS (
        UPDATE contacts
           SET status = :status, updated_at = now(),
               unsubscribed_at = CASE WHEN :status = 'unsubscribed' THEN now() END
         WHERE email = ANY(CAST(:emails AS text[])) AND status <> :status
        RETURNING id
    )
    INSERT INTO contact_status_changes (contact_id, status, source)
    SELECT id, :status, :source FROM changed
    RETURNING contact_id
"""


async def record_status_change(
    session: AsyncSession, emails: list[str], status: str, source: str
) -> list[int]:
    """Move the contacts at ``emails`` (normalised) to ``status`` ("subscribed" or
    "unsubscribed"), recording ``source`` ("api", "import", "unsubscribe_link",
    "complaint") and the time; the ids of the contacts that changed."""
    if status not in CONTACT_STATUSES:
        raise ValueError(f"unknown contact status {status!r}")
    if source not in STATUS_SOURCES:
        raise ValueError(f"unknown status source {source!r}")
    rows = await session.execute(
        text(STATUS_CHANGE_SQL), {"emails": emails, "status": status, "source": source}
    )
    return [int(r[0]) for r in rows]


async def status_changes(session: AsyncSession, contact_id: int) -> list[ContactStatusChange]:
    query = select(ContactStatusChange).where(ContactStatusChange.contact_id == contact_id)
    return list((await session.execute(query.order_by(ContactStatusChange.id))).scalars())


# --- erasure ---------------------------------------------------------------------------------

# Right to be forgotten: the contact goes, its messages and events keep only what the
# numbers need (status, ids, times), and the raw SNS notifications and import reports that
# name the address lose it. The suppression stays: it is what keeps the address unmailed.
_ERASE_CONTACT = text("DELETE FROM contacts WHERE email = :email RETURNING id")
_ERASE_STATUS = text("DELETE FROM contact_status_changes WHERE contact_id = :id")
_ERASE_MESSAGES = text(
    """
    UPDATE messages
       SET email = '', data = NULL, subject = NULL, html = NULL, text = NULL,
           error = CASE WHEN strpos(lower(error), :email) > 0 THEN '[erased]' ELSE error END
     WHERE email = :email OR (contact_id = :id AND campaign_id IS NOT NULL)
    RETURNING id
    """
)
_ERASE_EVENTS = text(
    """
    UPDATE events SET email = NULL, data = '{}'
     WHERE email = :email OR message_id = ANY(CAST(:messages AS bigint[]))
    RETURNING id
    """
)
_ERASE_NOTIFICATIONS = text(
    """
    UPDATE sns_notifications
       SET body = '{"erased": true}', processed_at = coalesce(processed_at, now()),
           error = coalesce(error, 'erased before processing')
     WHERE strpos(lower(body::text), :email) > 0
    """
)
_ERASE_IMPORT_REPORTS = text(
    """
    UPDATE contact_imports
       SET errors = (SELECT jsonb_agg(CASE WHEN strpos(lower(e ->> 'email'), :email) > 0
                                           THEN jsonb_set(e, '{email}', '""') ELSE e END
                                      ORDER BY n)
                       FROM jsonb_array_elements(errors) WITH ORDINALITY AS x(e, n))
     WHERE strpos(lower(errors::text), :email) > 0
    """
)
_ERASE_STAGED = text("DELETE FROM contact_import_rows WHERE email = :email")
_RECORD_ERASURE = text(
    f"""
    INSERT INTO contact_erasures (address_hmac, messages, events, suppressed)
    VALUES (:hmac, :messages, :events, {is_suppressed(":email")})
    RETURNING suppressed
    """  # noqa: S608 - constant fragments, no input
)


async def erased(session: AsyncSession, address_hmacs: list[str]) -> bool:
    """Whether an erasure is recorded under any of these HMACs of one address."""
    found = await session.execute(
        text("SELECT EXISTS (SELECT 1 FROM contact_erasures WHERE address_hmac = ANY(:h))"),
        {"h": address_hmacs},
    )
    return bool(found.scalar_one())


async def erase(
    session: AsyncSession, email: str, address_hmac: str
) -> tuple[bool, int, int, bool]:
    """(contact existed, messages erased, events erased, still suppressed)."""
    contact_id = (await session.execute(_ERASE_CONTACT, {"email": email})).scalar()
    if contact_id is not None:
        await session.execute(_ERASE_STATUS, {"id": contact_id})
    messages = [
        int(m)
        for m in (
            await session.execute(_ERASE_MESSAGES, {"email": email, "id": contact_id})
        ).scalars()
    ]
    events = len(
        (await session.execute(_ERASE_EVENTS, {"email": email, "messages": messages})).all()
    )
    await session.execute(_ERASE_NOTIFICATIONS, {"email": email})
    await session.execute(_ERASE_IMPORT_REPORTS, {"email": email})
    await session.execute(_ERASE_STAGED, {"email": email})
    suppressed = bool(
        (
            await session.execute(
                _RECORD_ERASURE,
                {"hmac": address_hmac, "messages": len(messages), "events": events, "email": email},
            )
        ).scalar_one()
    )
    return contact_id is not None, len(messages), events, suppressed


async def get(session: AsyncSession, email: str) -> tuple[Contact, bool] | None:
    suppressed = select(Suppression.email).where(Suppression.email == Contact.email).exists()
    row = (
        await session.execute(select(Contact, suppressed).where(Contact.email == email))
    ).one_or_none()
    return None if row is None else (row[0], bool(row[1]))
