"""Topics, subscriptions, consent records, forms and confirmations: the SQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import Confirmation, Form, Topic
from mailer.models.subscription import SET_TOPICS_SQL

# -- topics ------------------------------------------------------------------------------


async def insert_topic(session: AsyncSession, **values: Any) -> Topic:
    topic = Topic(**values)
    session.add(topic)
    await session.flush()
    await session.refresh(topic)
    return topic


async def get_topic(session: AsyncSession, topic_id: int) -> Topic | None:
    return await session.get(Topic, topic_id)


async def topic_name_taken(session: AsyncSession, name: str, but: int | None = None) -> bool:
    found = await session.execute(
        text("SELECT 1 FROM topics WHERE name = :name AND id IS DISTINCT FROM :but"),
        {"name": name, "but": but},
    )
    return found.first() is not None


async def topics_page(session: AsyncSession, after: int, limit: int) -> list[Topic]:
    query = select(Topic).where(Topic.id > after).order_by(Topic.id).limit(limit)
    return list((await session.execute(query)).scalars())


async def topics_by_id(session: AsyncSession, ids: list[int]) -> dict[int, Topic]:
    rows = await session.execute(select(Topic).where(Topic.id.in_(ids)))
    return {t.id: t for t in rows.scalars()}


async def subscriber_counts(session: AsyncSession, topic_ids: list[int]) -> list[Any]:
    """(topic_id, status, count) of the topics' subscriptions: an index-only scan of
    ix_contact_topics_topic (topic, status, contact) per topic."""
    rows = await session.execute(
        text(
            "SELECT topic_id, status, count(*) AS n FROM contact_topics"
            " WHERE topic_id = ANY(:ids) GROUP BY topic_id, status"
        ),
        {"ids": topic_ids},
    )
    return list(rows)


async def public_topics(session: AsyncSession) -> list[Topic]:
    rows = await session.execute(select(Topic).where(Topic.public).order_by(Topic.id))
    return list(rows.scalars())


# -- subscriptions and their consent records ------------------------------------------------


@dataclass(frozen=True)
class Consent:
    """What a reader was shown and from where, recorded with every change it makes."""

    source: str
    form_id: int | None = None
    form_version: int | None = None
    shown: str | None = None
    ip: str | None = None
    user_agent: str | None = None


_SET_TOPICS = text(SET_TOPICS_SQL)


async def set_topics(
    session: AsyncSession,
    changes: list[tuple[int, int, str]],
    consent: Consent,
    *,
    keep_subscribed: bool = False,
) -> list[tuple[int, int, str]]:
    """Set (contact id, topic id, status) subscriptions; the ones that changed."""
    if not changes:
        return []
    rows = await session.execute(
        _SET_TOPICS,
        {
            "contacts": [c for c, _, _ in changes],
            "topics": [t for _, t, _ in changes],
            "statuses": [s for _, _, s in changes],
            "keep_subscribed": keep_subscribed,
            "source": consent.source,
            "form_id": consent.form_id,
            "form_version": consent.form_version,
            "shown": consent.shown,
            "ip": consent.ip,
            "ua": consent.user_agent,
        },
    )
    return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]


async def contact_topics(session: AsyncSession, contact_id: int) -> list[Any]:
    rows = await session.execute(
        text(
            """
            SELECT ct.topic_id, t.name, t.description, ct.status, ct.updated_at
              FROM contact_topics ct JOIN topics t ON t.id = ct.topic_id
             WHERE ct.contact_id = :id ORDER BY ct.topic_id
            """
        ),
        {"id": contact_id},
    )
    return list(rows)


async def consent_records(
    session: AsyncSession, contact_id: int, after: int, limit: int
) -> list[Any]:
    rows = await session.execute(
        text(
            """
            SELECT c.id, c.topic_id, t.name AS topic, c.status, c.source, c.form_id,
                   c.form_version, c.shown, c.ip, c.user_agent, c.changed_at
              FROM topic_changes c JOIN topics t ON t.id = c.topic_id
             WHERE c.contact_id = :id AND c.id > :after ORDER BY c.id LIMIT :limit
            """
        ),
        {"id": contact_id, "after": after, "limit": limit},
    )
    return list(rows)


async def forget_origins(session: AsyncSession, older_than_days: int) -> int:
    """Clear the IP and user agent of consent records past the retention time."""
    result: Any = await session.execute(
        text(
            """
            UPDATE topic_changes SET ip = NULL, user_agent = NULL
             WHERE changed_at < now() - make_interval(days => :days)
               AND (ip IS NOT NULL OR user_agent IS NOT NULL)
            """
        ),
        {"days": older_than_days},
    )
    return int(result.rowcount or 0)


# -- contacts, as the subscription side sees them --------------------------------------------


async def contact_id(session: AsyncSession, email: str) -> tuple[int, str] | None:
    row = (
        await session.execute(
            text("SELECT id, status FROM contacts WHERE email = :email"), {"email": email}
        )
    ).first()
    return None if row is None else (int(row[0]), str(row[1]))


async def contact_email(session: AsyncSession, contact_id: int) -> str | None:
    found = await session.execute(
        text("SELECT email FROM contacts WHERE id = :id"), {"id": contact_id}
    )
    return found.scalar_one_or_none()


async def contact_of_message(session: AsyncSession, message_id: int) -> int | None:
    found = await session.execute(
        text("SELECT c.id FROM messages m JOIN contacts c ON c.email = m.email WHERE m.id = :id"),
        {"id": message_id},
    )
    return found.scalar_one_or_none()


# A form's signup: the contact is created (unconfirmed when it must confirm first) with
# the form's fields as attributes; an existing contact keeps its attributes and status
# (an anonymous form may not rewrite them), it only gains attributes it did not have.
_SIGNUP_CONTACT = text(
    """
    WITH up AS (
        INSERT INTO contacts AS c (email, attributes, status)
        VALUES (:email, CAST(:attributes AS jsonb), :status)
        ON CONFLICT (email) DO UPDATE SET attributes = excluded.attributes || c.attributes
        RETURNING c.id, c.status, (xmax = 0) AS created
    ),
    recorded AS (
        INSERT INTO contact_status_changes (contact_id, status, source)
        SELECT id, status, 'form' FROM up WHERE created
    )
    SELECT id, status, created FROM up
    """
)


async def signup_contact(
    session: AsyncSession, email: str, attributes: str, status: str
) -> tuple[int, str, bool]:
    """(contact id, its status, created now)."""
    row: Any = (
        await session.execute(
            _SIGNUP_CONTACT, {"email": email, "attributes": attributes, "status": status}
        )
    ).one()
    return int(row.id), str(row.status), bool(row.created)


async def confirm_contact(session: AsyncSession, contact_id: int) -> None:
    """An unconfirmed contact that confirms becomes subscribed (recorded)."""
    await session.execute(
        text(
            """
            WITH moved AS (
                UPDATE contacts SET status = 'subscribed', updated_at = now()
                 WHERE id = :id AND status = 'unconfirmed' RETURNING id
            )
            INSERT INTO contact_status_changes (contact_id, status, source)
            SELECT id, 'subscribed', 'confirmation_link' FROM moved
            """
        ),
        {"id": contact_id},
    )


async def leave_everything(session: AsyncSession, contact_id: int) -> None:
    """The preference centre's "leave everything": no marketing mail at all (recorded)."""
    await session.execute(
        text(
            """
            WITH moved AS (
                UPDATE contacts SET status = 'unsubscribed', unsubscribed_at = now(),
                       updated_at = now()
                 WHERE id = :id AND status <> 'unsubscribed' RETURNING id
            )
            INSERT INTO contact_status_changes (contact_id, status, source)
            SELECT id, 'unsubscribed', 'unsubscribe_link' FROM moved
            """
        ),
        {"id": contact_id},
    )


# -- forms and confirmations ----------------------------------------------------------------


async def insert_form(session: AsyncSession, **values: Any) -> Form:
    form = Form(**values)
    session.add(form)
    await session.flush()
    await session.refresh(form)
    return form


async def get_form(session: AsyncSession, form_id: int, lock: bool = False) -> Form | None:
    return await session.get(Form, form_id, with_for_update=lock)


async def forms_page(session: AsyncSession, after: int, limit: int) -> list[Form]:
    query = select(Form).where(Form.id > after).order_by(Form.id).limit(limit)
    return list((await session.execute(query)).scalars())


async def recent_confirmation(
    session: AsyncSession, contact_id: int, form_id: int, since: datetime
) -> bool:
    """Whether a confirmation of this address and form was sent since ``since``."""
    found = await session.execute(
        text(
            """
            SELECT 1 FROM confirmations
             WHERE contact_id = :c AND form_id = :f AND created_at > :since LIMIT 1
            """
        ),
        {"c": contact_id, "f": form_id, "since": since},
    )
    return found.first() is not None


async def lock_pair(session: AsyncSession, contact_id: int, form_id: int) -> None:
    """Two submissions of one address and form at once: one sends, the other waits."""
    await session.execute(
        text("SELECT pg_advisory_xact_lock(:c, :f)"),
        {"c": contact_id & 0x7FFFFFFF, "f": form_id & 0x7FFFFFFF},
    )


async def insert_confirmation(session: AsyncSession, **values: Any) -> Confirmation:
    row = Confirmation(**values)
    session.add(row)
    await session.flush()
    return row


async def use_confirmation(session: AsyncSession, confirmation_id: int) -> Any:
    """Mark a live (unused, unexpired) confirmation used; its row, or None."""
    return (
        await session.execute(
            text(
                """
                UPDATE confirmations SET used_at = now()
                 WHERE id = :id AND used_at IS NULL AND expires_at > now()
                RETURNING contact_id, form_id, topic_ids
                """
            ),
            {"id": confirmation_id},
        )
    ).first()
