"""Topics, subscriptions, consent records, forms and confirmations: the SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import Form, Topic
from mailer.models.subscription import SET_TOPICS_SQL, Consent, set_topics_params

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


_SET_TOPICS = text(SET_TOPICS_SQL)


async def set_topics(
    session: AsyncSession,
    changes: list[tuple[int, int, str]],
    consent: Consent | list[Consent],
    *,
    keep_subscribed: bool = False,
) -> list[tuple[int, int, str]]:
    """Set (contact id, topic id, status) subscriptions, each recorded with ``consent``
    (one for all, or one per change under the same source); the ones that changed."""
    if not changes:
        return []
    rows = await session.execute(
        _SET_TOPICS, set_topics_params(changes, consent, keep_subscribed=keep_subscribed)
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


# Forms' signups: each contact is created (unconfirmed when it must confirm first) with
# the form's fields as attributes; an existing contact keeps its attributes and status
# (an anonymous form may not rewrite them), it only gains attributes it did not have.
# Each address once per statement, in address order (rows locked in one order by all).
_SIGNUP_CONTACTS = text(
    """
    WITH up AS (
        INSERT INTO contacts AS c (email, attributes, status)
        SELECT w.email, CAST(w.attributes AS jsonb), w.status
          FROM unnest(CAST(:emails AS text[]), CAST(:attributes AS text[]),
                      CAST(:statuses AS text[])) AS w(email, attributes, status)
        ON CONFLICT (email) DO UPDATE SET attributes = excluded.attributes || c.attributes
        RETURNING c.id, c.email, c.status, (xmax = 0) AS created
    ),
    recorded AS (
        INSERT INTO contact_status_changes (contact_id, status, source)
        SELECT id, status, 'form' FROM up WHERE created
    )
    SELECT id, email FROM up
    """
)


async def signup_contacts(
    session: AsyncSession, signups: list[tuple[str, str, str]]
) -> dict[str, int]:
    """(address, attributes as JSON, status) of distinct addresses: their contact ids."""
    rows = await session.execute(
        _SIGNUP_CONTACTS,
        {
            "emails": [e for e, _, _ in signups],
            "attributes": [a for _, a, _ in signups],
            "statuses": [s for _, _, s in signups],
        },
    )
    return {str(r.email): int(r.id) for r in rows}


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


async def forms_by_id(session: AsyncSession, ids: list[int]) -> dict[int, Form]:
    rows = await session.execute(select(Form).where(Form.id.in_(ids)))
    return {f.id: f for f in rows.scalars()}


async def lock_pairs(session: AsyncSession, pairs: list[tuple[int, int]]) -> None:
    """Two submissions of one address and form at once: one sends, the other waits. The
    (contact id, form id) locks are taken in one order by everyone (no deadlock)."""
    ordered = sorted({(c & 0x7FFFFFFF, f & 0x7FFFFFFF) for c, f in pairs})
    await session.execute(
        text(
            """
            SELECT pg_advisory_xact_lock(p.c, p.f)
              FROM unnest(CAST(:c AS int[]), CAST(:f AS int[])) WITH ORDINALITY AS p(c, f, n)
             ORDER BY p.n
            """
        ),
        {"c": [c for c, _ in ordered], "f": [f for _, f in ordered]},
    )


async def recent_confirmations(
    session: AsyncSession, pairs: list[tuple[int, int]], since: datetime
) -> set[tuple[int, int]]:
    """The (contact id, form id) pairs a confirmation was sent to since ``since``."""
    rows = await session.execute(
        text(
            """
            SELECT DISTINCT c.contact_id, c.form_id
              FROM unnest(CAST(:c AS bigint[]), CAST(:f AS bigint[])) AS p(c, f)
              JOIN confirmations c ON c.contact_id = p.c AND c.form_id = p.f
             WHERE c.created_at > :since
            """
        ),
        {"c": [c for c, _ in pairs], "f": [f for _, f in pairs], "since": since},
    )
    return {(int(r[0]), int(r[1])) for r in rows}


async def insert_confirmations(
    session: AsyncSession, rows: list[tuple[int, int, list[int]]], expires_at: datetime
) -> dict[tuple[int, int], int]:
    """Confirmations for distinct (contact id, form id, topic ids): their ids by pair."""
    found = await session.execute(
        text(
            """
            INSERT INTO confirmations (contact_id, form_id, topic_ids, expires_at)
            SELECT p.c, p.f, CAST(p.t AS bigint[]), :expires_at
              FROM unnest(CAST(:c AS bigint[]), CAST(:f AS bigint[]), CAST(:t AS text[]))
                   AS p(c, f, t)
            RETURNING id, contact_id, form_id
            """
        ),
        {
            "c": [c for c, _, _ in rows],
            "f": [f for _, f, _ in rows],
            "t": ["{" + ",".join(map(str, t)) + "}" for _, _, t in rows],
            "expires_at": expires_at,
        },
    )
    return {(int(r.contact_id), int(r.form_id)): int(r.id) for r in found}


async def attach_messages(session: AsyncSession, links: list[tuple[int, int]]) -> None:
    """(confirmation id, message id): the mail each confirmation went out as."""
    await session.execute(
        text(
            """
            UPDATE confirmations c SET message_id = p.m
              FROM unnest(CAST(:ids AS bigint[]), CAST(:m AS bigint[])) AS p(id, m)
             WHERE c.id = p.id
            """
        ),
        {"ids": [i for i, _ in links], "m": [m for _, m in links]},
    )


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
