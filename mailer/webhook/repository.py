"""The SQL of the feedback loop: notifications stored once, events applied set-based.

Each event type is applied by ONE statement for a whole batch of notifications (as
listmonk's record-bounce CTE): the events are inserted once under their dedup key, and
only the rows that were really inserted carry the effects (message status, campaign
counters, suppressions, contacts) in the same statement. So a replayed notification, or
the same event in both SES formats, changes nothing, and a crash leaves all or nothing.
Each statement touches a row of each table at most once (PostgreSQL applies only one
update per row and statement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailer.engagement.repository import domain_rollup, timeline_rollup
from mailer.models.subscription import UNSUBSCRIBE_TOPICS_CTE
from mailer.models.suppression import SUPPRESS_ALL_CTE, SUPPRESS_MARKETING_CTE
from mailer.reputation.repository import configuration_sets_json, rollup_events
from mailer.webhook.ses import EventRow
from mailer.webhook_out.outbox import feedback_events

# -- notifications --------------------------------------------------------------------

# the verified messages of many concurrent requests in one statement (group commit); an SNS
# retry of a stored MessageId inserts nothing and is not returned. Sent on the driver
# connection, outside BEGIN: the statement is its own transaction (mailer.db.HeldConnections)
_STORE = """
    INSERT INTO sns_notifications (sns_message_id, topic_arn, type, body)
    SELECT m, t, k, CAST(b AS jsonb)
      FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS x(m, t, k, b)
    ON CONFLICT (sns_message_id) DO NOTHING
    RETURNING sns_message_id, type
"""


async def store(driver: Any, items: Sequence[tuple[str, str, str, bytes]]) -> dict[str, str]:
    """Store (message id, topic, type, raw body) rows once, committed when this returns;
    the new ones: id → type. ``driver`` is an asyncpg connection outside a transaction."""
    rows = await driver.fetch(
        _STORE,
        [i[0] for i in items],
        [i[1] for i in items],
        [i[2] for i in items],
        [i[3].decode() for i in items],
    )
    return {r[0]: r[1] for r in rows}


# oldest first; SKIP LOCKED lets several events workers drain side by side
_CLAIM = text(
    """
    SELECT id, type, body, received_at FROM sns_notifications
     WHERE processed_at IS NULL AND (retry_at IS NULL OR retry_at <= now())
     ORDER BY id
     LIMIT :limit
       FOR UPDATE SKIP LOCKED
    """
)


async def claim(conn: AsyncConnection | AsyncSession, limit: int) -> list[Any]:
    """Unprocessed notifications (``ix_sns_notifications_unprocessed``), locked until commit."""
    return list(await conn.execute(_CLAIM, {"limit": limit}))


_CLAIM_ONE = text(
    "SELECT id, type, body, received_at FROM sns_notifications"
    " WHERE id = :id AND processed_at IS NULL FOR UPDATE SKIP LOCKED"
)


async def claim_one(conn: AsyncConnection | AsyncSession, notification_id: int) -> Any:
    return (await conn.execute(_CLAIM_ONE, {"id": notification_id})).one_or_none()


_KNOWN = text(
    "SELECT DISTINCT ses_message_id FROM messages WHERE ses_message_id = ANY(CAST(:ids AS text[]))"
)


async def known_ses_ids(conn: AsyncConnection | AsyncSession, ids: list[str]) -> set[str]:
    """The SES message ids among ``ids`` that a message of ours carries."""
    if not ids:
        return set()
    return set((await conn.execute(_KNOWN, {"ids": ids})).scalars())


_DEFER = text(
    "UPDATE sns_notifications SET retry_at = now() + make_interval(secs => :seconds)"
    " WHERE id = ANY(CAST(:ids AS bigint[]))"
)


async def defer(conn: AsyncConnection | AsyncSession, ids: list[int], seconds: float) -> None:
    if ids:
        await conn.execute(_DEFER, {"ids": ids, "seconds": seconds})


_DONE = text(
    """
    UPDATE sns_notifications AS n SET processed_at = now(), error = t.error
      FROM unnest(CAST(:ids AS bigint[]), CAST(:errors AS text[])) AS t(id, error)
     WHERE n.id = t.id
    """
)


async def mark_processed(
    conn: AsyncConnection | AsyncSession, ids: list[int], errors: list[str | None]
) -> None:
    if ids:
        await conn.execute(_DONE, {"ids": ids, "errors": errors})


# -- events ---------------------------------------------------------------------------

# input → the events inserted (matched to their message by SES message id; an unknown id
# is stored with no message and counted) → the messages that get their FIRST event of
# this type from this batch, per campaign: the counters count messages, whatever order
# and however often the events come.
_HEAD = """
WITH input AS (
    SELECT * FROM unnest(CAST(:nids AS bigint[]), CAST(:ses_ids AS text[]),
                         CAST(:emails AS text[]), CAST(:subtypes AS text[]),
                         CAST(:ats AS timestamptz[]), CAST(:keys AS text[]),
                         CAST(:datas AS text[]))
           AS t(nid, ses_id, email, subtype, at, key, data)
),
inserted AS (
    INSERT INTO events (sns_notification_id, message_id, campaign_id, email, mail_class,
                        region, type, subtype, occurred_at, data, dedup_key)
    SELECT i.nid, m.id, m.campaign_id, i.email, m.mail_class, m.region, :type, i.subtype,
           i.at, CAST(i.data AS jsonb), i.key
      FROM input i
      LEFT JOIN LATERAL (
           SELECT id, campaign_id, mail_class, region FROM messages
            WHERE ses_message_id = i.ses_id ORDER BY id DESC LIMIT 1) m ON true
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id, message_id, campaign_id, email, subtype, data, mail_class, region,
              occurred_at
),
firsts AS (
    SELECT campaign_id, count(DISTINCT message_id) AS n FROM inserted i
     WHERE campaign_id IS NOT NULL {first_filter}
       AND NOT EXISTS (SELECT 1 FROM events e
                        WHERE e.message_id = i.message_id AND e.type = :type)
     GROUP BY campaign_id
),
touched AS (SELECT DISTINCT message_id FROM inserted WHERE message_id IS NOT NULL)
"""

_TAIL = """
SELECT (SELECT count(*) FROM inserted) AS stored,
       (SELECT count(*) FROM inserted WHERE message_id IS NULL) AS unmatched
"""


# the statements are composed once, at import, from the constants below, never from input


def _count(column: str) -> str:
    return f"""
, counted AS (
    UPDATE campaign_stats s SET {column} = s.{column} + f.n
      FROM firsts f WHERE s.campaign_id = f.campaign_id
)"""  # noqa: S608


def _move(status: str, after: Sequence[str]) -> str:
    # statuses only move forward: a late Delivery or Open never overwrites Bounce/Complaint
    froms = ", ".join(f"'{s}'" for s in after)
    return f"""
, moved AS (
    UPDATE messages m SET status = '{status}'
      FROM touched t
     WHERE m.id = t.message_id AND m.status IN ({froms})
    RETURNING m.id, m.campaign_id
)"""  # noqa: S608


_UNSUBSCRIBE_CONTACTS = """
, unsubscribed AS (
    UPDATE contacts c SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
      FROM (SELECT DISTINCT email FROM inserted WHERE {where}) i
     WHERE c.email = i.email AND c.status = 'subscribed'
    RETURNING c.id
)
, unsubscribed_recorded AS (
    INSERT INTO contact_status_changes (contact_id, status, source)
    SELECT id, 'unsubscribed', '{source}' FROM unsubscribed
)"""

# permanent bounces, and addresses whose transient (or undetermined) bounces reach three
# within 30 days, counting those already stored (the statement's snapshot) and this batch's
_HARD = """
, hard AS (
    SELECT email, 'permanent bounce' || coalesce(': ' || min(data->>'bounceSubType'), '')
           AS reason
      FROM inserted WHERE subtype = 'Permanent' AND email IS NOT NULL GROUP BY email
    UNION ALL
    SELECT i.email, 'transient bounces: 3 within 30 days'
      FROM inserted i WHERE i.subtype <> 'Permanent' AND i.email IS NOT NULL
     GROUP BY i.email
    HAVING count(*) + (SELECT count(*) FROM events e
                        WHERE e.email = i.email AND e.type = 'bounce'
                          AND e.subtype <> 'Permanent'
                          AND e.occurred_at > now() - interval '30 days') >= 3
)"""


def _statement(first_filter: str = "", *effects: str) -> Any:
    return text(_HEAD.format(first_filter=first_filter) + "".join(effects) + _TAIL)


def _with_webhooks(kind: str, statement: Any) -> Any:
    # outgoing webhooks (mailer.webhook_out): the events inserted, reported in the statement
    return text(statement.text.replace(_TAIL, feedback_events(kind) + _TAIL))


_BY_TYPE = {
    "send": _statement(),
    "delivery_delay": _statement("", domain_rollup("delayed")),
    "delivery": _statement(
        "",
        _count("delivered"),
        _move("delivered", ["sent"]),
        rollup_events("delivery"),
        domain_rollup("delivered"),
        timeline_rollup("delivered"),
    ),
    "open": _statement("", _count("opened"), timeline_rollup("opens"), domain_rollup("opened")),
    "click": _statement("", _count("clicked"), timeline_rollup("clicks")),
    "bounce": _statement(
        "",
        _count("bounced"),
        _move("bounced", ["sent", "delivered"]),
        _HARD,
        SUPPRESS_ALL_CTE,
        rollup_events("bounce"),
        domain_rollup("bounced"),
        timeline_rollup("bounced"),
    ),
    "complaint": _statement(
        "",
        _count("complained"),
        _move("complained", ["sent", "delivered", "bounced"]),
        SUPPRESS_MARKETING_CTE.format(reason="complaint", source="complaint", where=""),
        _UNSUBSCRIBE_CONTACTS.format(where="email IS NOT NULL", source="complaint"),
        UNSUBSCRIBE_TOPICS_CTE.format(source="complaint"),
        rollup_events("complaint"),
        domain_rollup("complained"),
        timeline_rollup("complained"),
    ),
    "subscription": _statement(
        "AND i.subtype = 'unsubscribe_all'",
        _count("unsubscribed"),
        SUPPRESS_MARKETING_CTE.format(
            reason="unsubscribed (SES subscription management)",
            source="unsubscribe",
            where="AND subtype = 'unsubscribe_all'",
        ),
        # SES's own subscription management: its unsubscribe link
        _UNSUBSCRIBE_CONTACTS.format(
            where="subtype = 'unsubscribe_all'", source="unsubscribe_link"
        ),
    ),
}


# reject and rendering failure: the message failed after SES accepted the call
def _failed(why: str) -> str:
    return f"""
, reasons AS (
    SELECT message_id, min(coalesce(data->>'reason', data->>'errorMessage')) AS reason
      FROM inserted WHERE message_id IS NOT NULL GROUP BY message_id
),
moved AS (
    UPDATE messages m SET status = 'failed', error = {why}
      FROM reasons r
     WHERE m.id = r.message_id AND m.status = 'sent'
    RETURNING m.id, m.campaign_id
),
counted AS (
    UPDATE campaign_stats s SET failed = s.failed + c.n
      FROM (SELECT campaign_id, count(*) AS n FROM moved
             WHERE campaign_id IS NOT NULL GROUP BY campaign_id) c
     WHERE s.campaign_id = c.campaign_id
)"""  # noqa: S608


for _kind, _why in (
    ("reject", "'rejected by SES: ' || coalesce(r.reason, '')"),
    ("rendering_failure", "'rendering failure: ' || coalesce(r.reason, '')"),
):
    _BY_TYPE[_kind] = text(_HEAD.format(first_filter="") + _failed(_why) + _TAIL)

_BY_TYPE = {kind: _with_webhooks(kind, statement) for kind, statement in _BY_TYPE.items()}


@dataclass
class Applied:
    stored: int = 0
    unmatched: int = 0


async def apply_events(
    conn: AsyncConnection | AsyncSession, kind: str, rows: list[tuple[int, EventRow]]
) -> Applied:
    """Apply the events of one type (with the id of their notification) in one statement."""
    if not rows:
        return Applied()
    params = {
        "type": kind,
        "nids": [nid for nid, _ in rows],
        "ses_ids": [r.ses_message_id for _, r in rows],
        "emails": [r.email for _, r in rows],
        "subtypes": [r.subtype for _, r in rows],
        "ats": [r.occurred_at for _, r in rows],
        "keys": [r.dedup_key for _, r in rows],
        "datas": [orjson.dumps(r.data).decode() for _, r in rows],
        "config_sets": configuration_sets_json(),
    }
    result = (await conn.execute(_BY_TYPE[kind], params)).one()
    return Applied(int(result.stored), int(result.unmatched))
