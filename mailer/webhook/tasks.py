"""Events worker jobs: drain stored notifications in batches; the reconciler does the same
periodically, so notifications stored while Redis was lost are processed all the same."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.config import Settings
from mailer.db import transaction
from mailer.webhook import repository as repo
from mailer.webhook.process import UNMATCHED_WAIT_S, NotificationReport, process_batch
from mailer.webhook.store import WAKE_KEY

log = structlog.get_logger(__name__)


def _add(total: NotificationReport, part: NotificationReport) -> None:
    total.notifications += part.notifications
    total.events += part.events
    total.stored += part.stored
    total.unmatched += part.unmatched
    total.errors += part.errors
    total.deferred += part.deferred
    for kind, n in part.by_type.items():
        total.by_type[kind] = total.by_type.get(kind, 0) + n


async def drain_notifications(
    sessionmaker: async_sessionmaker[AsyncSession],
    batch_size: int,
    unmatched_wait: float = UNMATCHED_WAIT_S,
    settings: Settings | None = None,
) -> NotificationReport:
    """Process unprocessed notifications, oldest first, until none are left."""
    total = NotificationReport()
    while True:
        ids: list[int] = []
        try:
            async with transaction(sessionmaker) as session:
                rows = await repo.claim(session, batch_size)
                ids = [r.id for r in rows]
                if rows:
                    _add(total, await process_batch(session, rows, unmatched_wait, settings))
        except (OperationalError, InterfaceError):
            raise  # the database is away: the next wake-up or reconcile tries again
        except Exception as exc:  # noqa: BLE001 - one bad notification must not block the rest
            log.error("events_batch_failed", error=repr(exc), notifications=len(ids))
            _add(total, await _one_by_one(sessionmaker, ids, unmatched_wait, settings))
        if len(ids) < batch_size:
            return total


async def _one_by_one(
    sessionmaker: async_sessionmaker[AsyncSession],
    ids: list[int],
    unmatched_wait: float,
    settings: Settings | None = None,
) -> NotificationReport:
    total = NotificationReport()
    for notification_id in ids:
        async with transaction(sessionmaker) as session:
            row = await repo.claim_one(session, notification_id)
            if row is None:
                continue
            try:
                async with session.begin_nested():
                    _add(total, await process_batch(session, [row], unmatched_wait, settings))
            except (OperationalError, InterfaceError):
                raise
            except Exception as exc:  # noqa: BLE001 - kept with its error, never retried
                log.error("notification_failed", id=notification_id, error=repr(exc))
                await repo.mark_processed(session, [notification_id], [repr(exc)[:500]])
                total.errors += 1
    return total


async def process_notifications(ctx: dict[str, Any]) -> dict[str, Any]:
    """Drain the stored notifications (enqueued by the webhook, one job per burst)."""
    # cleared before reading: a notification stored from now on wakes another job
    await ctx["redis"].delete(WAKE_KEY)
    settings = ctx["settings"]
    report = await drain_notifications(
        ctx["sessionmaker"],
        settings.events_batch_size,
        settings.events_unmatched_wait_seconds,
        settings,
    )
    return {
        "notifications": report.notifications,
        "events": report.events,
        "stored": report.stored,
        "unmatched": report.unmatched,
        "errors": report.errors,
    }


async def reconcile_notifications_forever(ctx: dict[str, Any]) -> None:
    """Every ``events_reconcile_seconds``: process what no job was enqueued for."""
    interval = ctx["settings"].events_reconcile_seconds
    while True:
        try:
            settings = ctx["settings"]
            report = await drain_notifications(
                ctx["sessionmaker"],
                settings.events_batch_size,
                settings.events_unmatched_wait_seconds,
                settings,
            )
        except Exception as exc:  # noqa: BLE001 - the database may be back next time
            log.warning("events_reconcile_failed", error=repr(exc))
        else:
            if report.notifications:
                log.info("events_reconciled", notifications=report.notifications)
        await asyncio.sleep(interval)
