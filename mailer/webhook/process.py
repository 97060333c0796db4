"""The feedback loop's worker side: stored notifications applied in batches.

The one place events take effect is :func:`process_batch` (and the per-type statements of
``mailer.webhook.repository``); code that reacts to events (reputation, contact history)
hooks in there.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mailer import metrics
from mailer.campaign import repository as campaigns
from mailer.config import Settings, get_settings
from mailer.deliverability import inbound
from mailer.engagement import service as engagement
from mailer.reputation import service as reputation
from mailer.secrets import verifying_keys
from mailer.webhook import repository as repo
from mailer.webhook.ses import EventRow, NotAnEvent, read
from mailer.webhook.store import without_nul

log = structlog.get_logger(__name__)

# the order types are applied within a batch; statuses only move forward whatever it is
APPLY_ORDER = (
    "send",
    "delivery",
    "delivery_delay",
    "open",
    "click",
    "bounce",
    "complaint",
    "reject",
    "rendering_failure",
    "subscription",
)

UNMATCHED_WAIT_S = 60.0
RETRY_S = 5.0


@dataclass
class NotificationReport:
    notifications: int = 0
    deferred: int = 0
    events: int = 0
    stored: int = 0
    unmatched: int = 0
    errors: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


def events_of(row: Any, received: list[dict[str, Any]] | None = None) -> list[EventRow]:
    """The SES events of one stored notification (none for confirmations); a message
    SES received (no event) goes into ``received``."""
    if row.type != "Notification":
        return []
    body = row.body if isinstance(row.body, dict) else orjson.loads(row.body)
    text = body.get("Message") or ""
    try:
        message = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise NotAnEvent("the message is not JSON") from exc
    if "\\u0000" in text:  # a NUL in, say, a bounce's diagnostic: jsonb holds none
        message = without_nul(message)
    if inbound.is_received(message):
        if received is not None:
            received.append(message)
        return []
    return read(message, row.received_at or datetime.now(UTC))


async def process_batch(
    session: AsyncSession,
    rows: list[Any],
    unmatched_wait: float = UNMATCHED_WAIT_S,
    settings: Settings | None = None,
) -> NotificationReport:
    """Apply the events of claimed notifications and mark them processed.

    One statement per event type for the whole batch (see ``repository``); a notification
    that is not a readable SES event is marked processed with its error, never retried.
    One that names an SES message id no message carries yet is put off (``RETRY_S``) while
    it is younger than ``unmatched_wait``: SES can report on mail faster than the send's
    outcome reaches the database. After that it is applied, the unknown ids counted.
    """
    parsed: list[tuple[Any, list[EventRow] | None, str | None]] = []
    received: list[dict[str, Any]] = []  # mail SES received: inbound unsubscribes
    for row in rows:
        try:
            parsed.append((row, events_of(row, received), None))
        except NotAnEvent as exc:
            parsed.append((row, None, str(exc)[:500]))
    for message in received:
        await inbound.apply(session, verifying_keys(settings or get_settings()), message)
    known = await repo.known_ses_ids(
        session, list({e.ses_message_id for _, events, _ in parsed for e in events or []})
    )
    now = datetime.now(UTC)
    deferred = [
        row.id
        for row, events, _ in parsed
        if events
        and any(e.ses_message_id not in known for e in events)
        and row.received_at is not None
        and (now - row.received_at).total_seconds() < unmatched_wait
    ]
    await repo.defer(session, deferred, RETRY_S)
    skip = set(deferred)
    report = NotificationReport(notifications=len(rows) - len(skip), deferred=len(skip))
    by_type: dict[str, list[tuple[int, EventRow]]] = defaultdict(list)
    done: list[int] = []
    errors: list[str | None] = []
    for row, events, error in parsed:
        if row.id in skip:
            continue
        done.append(row.id)
        errors.append(error)
        if error is not None:
            report.errors += 1
        for event in events or []:
            by_type[event.type].append((row.id, event))
    for kind in APPLY_ORDER:
        items = by_type.get(kind)
        if not items:
            continue
        applied = await repo.apply_events(session, kind, items)
        report.events += len(items)
        report.stored += applied.stored
        report.unmatched += applied.unmatched
        report.by_type[kind] = applied.stored
        metrics.EVENTS.labels(kind).inc(applied.stored)
        if applied.stored and kind in engagement.ENGAGEMENT_KINDS:
            await engagement.after_events(session, kind, [e.ses_message_id for _, e in items])
    # auto-pause: checked right after the effects, in the same transaction
    risky = [e.ses_message_id for k in ("bounce", "complaint") for _, e in by_type.get(k, [])]
    if risky:
        await reputation.after_events(session, settings or get_settings(), risky, campaigns.pause)
    await repo.mark_processed(session, done, errors)
    if report.unmatched:
        # kept and counted: mail of another system, or from before a database restore
        log.info("events_unmatched", count=report.unmatched)
    return report
