"""The outbox: outgoing-webhook events written in the same transaction as the fact.

Hot paths (the send path's record statement, the feedback loop's per-type statements) add
one CTE built here to the statement they already run: an ``INSERT … SELECT`` from the rows
that statement changed, joined to the endpoints subscribed. No endpoint subscribed: the
join yields no rows and nothing is written. A rolled-back statement reports nothing; a
committed one cannot lose its events.

Every other state change (campaigns, suppressions, imports, the test event) calls
:func:`emit` inside its own transaction.

Payloads are ``{"type", "timestamp", "data"}`` (Standard Webhooks' recommended shape);
``data`` of a message event carries our message id, the SES message id, the recipient
(``to``), the mail class, the tags, the region and, for campaign mail, the campaign id.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

EventName = Literal[
    "message.sent",
    "message.delivered",
    "message.delivery_delayed",
    "message.bounced",
    "message.complained",
    "message.rejected",
    "message.failed",
    "message.opened",
    "message.clicked",
    "contact.subscribed",
    "contact.unsubscribed",
    "suppression.created",
    "suppression.deleted",
    "campaign.started",
    "campaign.paused",
    "campaign.resumed",
    "campaign.completed",
    "import.completed",
    "webhook.test",
]
EVENT_TYPES: tuple[str, ...] = get_args(EventName)
FAMILIES = tuple(sorted({t.split(".", 1)[0] + ".*" for t in EVENT_TYPES}))


def iso(expr: str) -> str:
    """SQL: an RFC 3339 UTC timestamp of ``expr`` (as the payload's ``timestamp``)."""
    return f"""to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def matches(type_sql: str, class_sql: str, campaign_sql: str) -> str:
    """SQL condition on endpoint ``e``: it hears an event of this type, class and campaign.
    Filters are strict: an endpoint limited to some campaigns hears only their events."""
    return f"""e.enabled
       AND (e.event_types IS NULL OR {type_sql} = ANY(e.event_types)
            OR split_part({type_sql}, '.', 1) || '.*' = ANY(e.event_types))
       AND (e.mail_classes IS NULL OR {class_sql} = ANY(e.mail_classes))
       AND (e.campaign_ids IS NULL OR {campaign_sql} = ANY(e.campaign_ids))"""


def _message_data(m: str, extra: str) -> str:
    return f"""jsonb_build_object(
               'message_id', {m}.id, 'ses_message_id', {m}.ses_message_id, 'to', {m}.email,
               'mail_class', {m}.mail_class, 'campaign_id', {m}.campaign_id,
               'region', {m}.region, 'tags', COALESCE({m}.tags, CAST('{{}}' AS jsonb))
           ) || {extra}"""


# -- the send path --------------------------------------------------------------------


def send_path_events(source: str = "moved") -> str:
    """The CTE for ``sending.repository``'s record statement: ``message.sent`` for every
    message SES accepted, ``message.failed`` for every one failed for good. ``source``
    returns id, outcome, email, mail_class, campaign_id, region, ses_message_id, tags,
    error of each message moved."""
    return f"""
, webhook_out AS (
    INSERT INTO webhook_deliveries (endpoint_id, type, message_id, payload)
    SELECT e.id, x.type, x.id,
           jsonb_build_object('type', x.type, 'timestamp', {iso("now()")}, 'data', x.data)
      FROM (SELECT s.id, s.mail_class, s.campaign_id,
                   CASE s.outcome WHEN 'sent' THEN 'message.sent'
                        ELSE 'message.failed' END AS type,
                   {_message_data("s", "jsonb_build_object('error', s.error)")} AS data
              FROM {source} s WHERE s.outcome IN ('sent', 'failed')) x
      JOIN webhook_endpoints e ON {matches("x.type", "x.mail_class", "x.campaign_id")}
     ORDER BY x.id, e.id
)"""  # noqa: S608 - composed of constants at import


def with_send_path_events(statement: Any, source: str) -> Any:
    """``statement`` (a ``WITH … SELECT``) with :func:`send_path_events` as its last CTE."""
    head, sep, tail = statement.text.rpartition("\n    SELECT ")
    return text(head + send_path_events(source) + sep + tail)


# -- the feedback loop ----------------------------------------------------------------

# feedback-loop event kind (mailer.webhook.ses) → (type, extra data from the event row i)
_FEEDBACK: dict[str, tuple[str, str]] = {
    "delivery": ("message.delivered", "jsonb_build_object('details', i.data)"),
    "delivery_delay": ("message.delivery_delayed", "jsonb_build_object('details', i.data)"),
    "bounce": (
        "message.bounced",
        """jsonb_build_object(
               'bounce_type', CASE WHEN i.subtype = 'Permanent' THEN 'hard' ELSE 'soft' END,
               'bounce_subtype', i.data->>'bounceSubType', 'details', i.data)""",
    ),
    "complaint": ("message.complained", "jsonb_build_object('details', i.data)"),
    "reject": ("message.rejected", "jsonb_build_object('details', i.data)"),
    "rendering_failure": ("message.failed", "jsonb_build_object('details', i.data)"),
    "open": ("message.opened", "jsonb_build_object('details', i.data)"),
    "click": ("message.clicked", "jsonb_build_object('link', i.data->>'link', 'details', i.data)"),
}


def feedback_events(kind: str) -> str:
    """The CTE for the feedback loop's statement of ``kind`` (``mailer.webhook.repository``):
    one event per event row really inserted (a replayed notification adds none) whose
    message is ours. Empty for kinds that report nothing (SES's Send: ``message.sent`` is
    reported when SES accepted the call)."""
    if kind not in _FEEDBACK:
        return ""
    event_type, extra = _FEEDBACK[kind]
    return f"""
, webhook_out AS (
    INSERT INTO webhook_deliveries (endpoint_id, type, message_id, payload)
    SELECT e.id, '{event_type}', m.id,
           jsonb_build_object('type', '{event_type}', 'timestamp', {iso("i.occurred_at")},
                              'data', {_message_data("m", extra)})
      FROM inserted i
      JOIN messages m ON m.id = i.message_id
      JOIN webhook_endpoints e ON {matches(f"'{event_type}'", "m.mail_class", "m.campaign_id")}
     ORDER BY i.occurred_at, i.id, e.id
)"""  # noqa: S608 - composed of constants at import


# -- everything else ------------------------------------------------------------------

_EMIT = text(
    f"""
    INSERT INTO webhook_deliveries (endpoint_id, type, message_id, payload)
    SELECT e.id, CAST(:type AS text), CAST(:message_id AS bigint),
           jsonb_build_object('type', CAST(:type AS text), 'timestamp', {iso("now()")},
                              'data', CAST(:data AS jsonb))
      FROM webhook_endpoints e
     WHERE (CAST(:endpoint_id AS bigint) IS NULL OR e.id = CAST(:endpoint_id AS bigint))
       AND {
        matches("CAST(:type AS text)", "CAST(:mail_class AS text)", "CAST(:campaign_id AS bigint)")
    }
    ORDER BY e.id
    RETURNING id
    """  # noqa: S608 - composed of constants at import
)


async def emit(
    session: AsyncSession | AsyncConnection,
    event_type: str,
    data: dict[str, Any],
    *,
    mail_class: str | None = None,
    campaign_id: int | None = None,
    message_id: int | None = None,
    endpoint_id: int | None = None,
) -> list[int]:
    """Write ``event_type`` for every endpoint that hears it (or only ``endpoint_id``), in
    the caller's transaction; the ids of the deliveries written."""
    rows = await session.execute(
        _EMIT,
        {
            "type": event_type,
            "data": orjson.dumps(data).decode(),
            "mail_class": mail_class,
            "campaign_id": campaign_id,
            "message_id": message_id,
            "endpoint_id": endpoint_id,
        },
    )
    return [r.id for r in rows]


_EMIT_TO = text(
    f"""
    INSERT INTO webhook_deliveries (endpoint_id, type, payload)
    VALUES (:endpoint_id, CAST(:type AS text),
            jsonb_build_object('type', CAST(:type AS text), 'timestamp', {iso("now()")},
                               'data', CAST(:data AS jsonb)))
    RETURNING id
    """  # noqa: S608 - composed of constants at import
)


async def emit_to(
    session: AsyncSession | AsyncConnection, endpoint_id: int, event_type: str, data: dict[str, Any]
) -> int:
    """Write one event for one endpoint whatever it subscribes to (``webhook.test``)."""
    params = {"endpoint_id": endpoint_id, "type": event_type, "data": orjson.dumps(data).decode()}
    return int((await session.execute(_EMIT_TO, params)).scalar_one())
