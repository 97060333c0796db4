"""Reputation SQL: per-minute rollups, the auto-pause checks, SES account rows.

Rollups are bumped by the statements that record sends (the ``rolled`` CTE of
``sending.repository.record``) and apply events (:func:`add_events`), one upsert per
batch. Readers sum buckets; nothing here scans the messages.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailer.config import get_settings

SIMULATOR = "%@simulator.amazonses.com"
WINDOWS = {"1h": "1 hour", "24h": "24 hours", "7d": "7 days"}

Db = AsyncSession | AsyncConnection


@lru_cache
def configuration_sets_json() -> str:
    """The mail class → configuration set map, as the rollup statements read it."""
    return json.dumps(get_settings().configuration_sets)


# The event side, folded into the feedback loop's per-type statements
# (``webhook.repository``): the events that statement really inserted (``inserted``: a
# replay or the same event in both SES formats counts once), bucketed by the minute they
# happened at; after the statement's other effects, in key order.
_ROLLUP_COLUMNS = {
    "delivery": {"delivered": "true"},
    "bounce": {
        "hard_bounces": "subtype = 'Permanent'",
        "soft_bounces": "subtype IS DISTINCT FROM 'Permanent'",
    },
    "complaint": {"complaints": "true"},
}


def rollup_events(event_type: str) -> str:
    """The ``rolled`` CTE for the feedback-loop statement of ``event_type``."""
    columns = _ROLLUP_COLUMNS[event_type]
    names = ", ".join(columns)
    counts = ", ".join(f"count(*) FILTER (WHERE {cond})" for cond in columns.values())
    updates = ", ".join(f"{c} = t.{c} + EXCLUDED.{c}" for c in columns)
    return f"""
, rolled AS (
    INSERT INTO reputation_minutes AS t
           (minute, mail_class, region, configuration_set, campaign_id, {names})
    SELECT date_trunc('minute', occurred_at), mail_class, COALESCE(region, ''),
           COALESCE(CAST(:config_sets AS jsonb) ->> mail_class, ''), COALESCE(campaign_id, 0),
           {counts}
      FROM inserted
     WHERE message_id IS NOT NULL AND mail_class IS NOT NULL
       AND COALESCE(email, '') NOT LIKE '%@simulator.amazonses.com'
     GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (minute, mail_class, region, configuration_set, campaign_id)
    DO UPDATE SET {updates}
)"""  # noqa: S608


_TOUCHED = text(
    """
    SELECT DISTINCT mail_class, campaign_id FROM messages
     WHERE ses_message_id = ANY(CAST(:sids AS text[]))
    """
)


async def touched_by(db: Db, ses_message_ids: list[str]) -> set[tuple[str, int | None]]:
    """The (mail class, campaign) of the messages these SES ids name."""
    rows = await db.execute(_TOUCHED, {"sids": ses_message_ids})
    return {(r.mail_class, r.campaign_id) for r in rows}


# Events by message id (a caller outside the SNS path): one upsert per call, bucketed by
# the minute the event happened at.
_ADD_EVENTS = text(
    """
    WITH e AS (
        SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:kinds AS text[]),
                             CAST(:ats AS timestamptz[])) AS e(id, kind, at)
    ), b AS (
        SELECT date_trunc('minute', COALESCE(e.at, now())) AS minute, m.mail_class,
               COALESCE(m.region, '') AS region,
               COALESCE(CAST(:config_sets AS jsonb) ->> m.mail_class, '') AS configuration_set,
               COALESCE(m.campaign_id, 0) AS campaign_id,
               count(*) FILTER (WHERE e.kind = 'delivered') AS delivered,
               count(*) FILTER (WHERE e.kind = 'hard_bounce') AS hard_bounces,
               count(*) FILTER (WHERE e.kind = 'soft_bounce') AS soft_bounces,
               count(*) FILTER (WHERE e.kind = 'complaint') AS complaints
          FROM e JOIN messages m ON m.id = e.id
         WHERE m.email NOT LIKE :simulator
         GROUP BY 1, 2, 3, 4, 5
    )
    INSERT INTO reputation_minutes AS t
           (minute, mail_class, region, configuration_set, campaign_id,
            delivered, hard_bounces, soft_bounces, complaints)
    SELECT * FROM b ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (minute, mail_class, region, configuration_set, campaign_id)
    DO UPDATE SET delivered = t.delivered + EXCLUDED.delivered,
                  hard_bounces = t.hard_bounces + EXCLUDED.hard_bounces,
                  soft_bounces = t.soft_bounces + EXCLUDED.soft_bounces,
                  complaints = t.complaints + EXCLUDED.complaints
    RETURNING t.mail_class, NULLIF(t.campaign_id, 0) AS campaign_id
    """
)


async def add_events(
    db: Db, items: Sequence[tuple[int, str, datetime | None]]
) -> set[tuple[str, int | None]]:
    """Count ``(message_id, kind, occurred_at)`` events; the (class, campaign) touched."""
    rows = await db.execute(
        _ADD_EVENTS,
        {
            "ids": [i[0] for i in items],
            "kinds": [i[1] for i in items],
            "ats": [i[2] for i in items],
            "config_sets": configuration_sets_json(),
            "simulator": SIMULATOR,
        },
    )
    return {(r.mail_class, r.campaign_id) for r in rows}


@dataclass(slots=True)
class Totals:
    sent: int
    hard_bounces: int
    complaints: int


# A campaign's numbers since it was last resumed after an auto-pause (a resume re-arms
# the check: the totals at the resume are subtracted).
_CAMPAIGNS_OVER = text(
    """
    WITH t AS (
        SELECT c.id, c.mail_class,
               sum(r.sent) - COALESCE(min(b.base_sent), 0) AS sent,
               sum(r.hard_bounces) - COALESCE(min(b.base_hard_bounces), 0) AS hard_bounces,
               sum(r.complaints) - COALESCE(min(b.base_complaints), 0) AS complaints
          FROM campaigns c
          JOIN reputation_minutes r ON r.campaign_id = c.id
          LEFT JOIN LATERAL (
              SELECT base_sent, base_hard_bounces, base_complaints FROM auto_pauses a
               WHERE a.campaign_id = c.id AND a.resumed_at IS NOT NULL
               ORDER BY a.id DESC LIMIT 1) b ON true
         WHERE c.id = ANY(CAST(:ids AS bigint[])) AND c.status = 'sending'
         GROUP BY c.id, c.mail_class
    )
    SELECT * FROM t
     WHERE sent >= :min_sends
       AND (hard_bounces > :bounce * sent OR complaints > :complaint * sent)
    """
)


async def campaigns_over(
    db: Db, ids: list[int], min_sends: int, bounce: float, complaint: float
) -> list[Any]:
    rows = await db.execute(
        _CAMPAIGNS_OVER,
        {"ids": ids, "min_sends": min_sends, "bounce": bounce, "complaint": complaint},
    )
    return list(rows)


# A mail class over 24 hours, from the minute after the last resume of one of its
# auto-paused campaigns (an operator who resumes has seen the class's numbers too).
_CLASS_TOTALS = text(
    """
    SELECT COALESCE(sum(sent), 0) AS sent, COALESCE(sum(hard_bounces), 0) AS hard_bounces,
           COALESCE(sum(complaints), 0) AS complaints
      FROM reputation_minutes
     WHERE mail_class = :mail_class
       AND minute >= GREATEST(
             now() - interval '24 hours',
             date_trunc('minute', COALESCE(
                 (SELECT max(resumed_at) FROM auto_pauses WHERE mail_class = :mail_class),
                 '-infinity'))
             + interval '1 minute')
    """
)


async def class_totals(db: Db, mail_class: str) -> Totals:
    row = (await db.execute(_CLASS_TOTALS, {"mail_class": mail_class})).one()
    return Totals(int(row.sent), int(row.hard_bounces), int(row.complaints))


_LOG_PAUSE = text(
    """
    INSERT INTO auto_pauses (scope, mail_class, campaign_id, campaigns, reason)
    VALUES (:scope, :mail_class, :campaign_id, :campaigns, :reason)
    """
)


async def log_pause(
    db: Db, scope: str, mail_class: str, campaign_id: int | None, campaigns: int, reason: str
) -> None:
    """Record an auto-pause (the operator's report lists them; a resume re-arms them)."""
    await db.execute(
        _LOG_PAUSE,
        {
            "scope": scope,
            "mail_class": mail_class,
            "campaign_id": campaign_id,
            "campaigns": campaigns,
            "reason": reason,
        },
    )


# An explicit resume re-arms the checks: a campaign's own counts from its totals now on;
# for an auto-paused campaign, its class's from the next minute.
_REARM_CAMPAIGN = text(
    """
    UPDATE auto_pauses a
       SET resumed_at = now(), base_sent = t.sent, base_hard_bounces = t.hard_bounces,
           base_complaints = t.complaints
      FROM (SELECT COALESCE(sum(sent), 0) AS sent,
                   COALESCE(sum(hard_bounces), 0) AS hard_bounces,
                   COALESCE(sum(complaints), 0) AS complaints
              FROM reputation_minutes WHERE campaign_id = :id) t
     WHERE a.resumed_at IS NULL AND a.campaign_id = :id
    """
)
_REARM_CLASS = text(
    """
    UPDATE auto_pauses SET resumed_at = now()
     WHERE resumed_at IS NULL AND scope = 'mail_class'
       AND mail_class = (SELECT mail_class FROM campaigns WHERE id = :id)
       AND EXISTS (SELECT 1 FROM campaigns WHERE id = :id AND paused_reason LIKE
                   'auto-pause: %')
    """
)


async def rearm(db: Db, campaign_id: int) -> None:
    await db.execute(_REARM_CAMPAIGN, {"id": campaign_id})
    await db.execute(_REARM_CLASS, {"id": campaign_id})


def _window_sums(prefix: str = "") -> str:
    parts = []
    for name, interval in WINDOWS.items():
        cond = f"{prefix}minute >= now() - interval '{interval}'"
        for column in ("sent", "delivered", "hard_bounces", "soft_bounces", "complaints"):
            parts.append(
                f"COALESCE(sum({prefix}{column}) FILTER (WHERE {cond}), 0) AS {column}_{name}"
            )
    return ",\n           ".join(parts)


_BY_CLASS_REGION = text(  # the f-string adds constant column lists
    f"""
    SELECT mail_class, region, {_window_sums()}
      FROM reputation_minutes WHERE minute >= now() - interval '7 days'
     GROUP BY 1, 2 ORDER BY 1, 2
    """  # noqa: S608
)

_BY_CAMPAIGN = text(  # the f-string adds constant column lists
    f"""
    SELECT c.id, c.name, c.mail_class, c.status, c.paused_reason, {_window_sums("r.")},
           COALESCE(sum(r.sent), 0) AS sent_all, COALESCE(sum(r.hard_bounces), 0) AS hb_all,
           COALESCE(sum(r.complaints), 0) AS co_all
      FROM campaigns c LEFT JOIN reputation_minutes r ON r.campaign_id = c.id
     WHERE c.status IN ('sending', 'paused')
     GROUP BY c.id ORDER BY c.id DESC LIMIT :limit
    """  # noqa: S608
)


async def by_class_region(db: Db) -> list[Any]:
    return list(await db.execute(_BY_CLASS_REGION))


async def by_campaign(db: Db, limit: int = 200) -> list[Any]:
    return list(await db.execute(_BY_CAMPAIGN, {"limit": limit}))


# Per-minute (or coarser) series of one mail class, or all, for the dashboard's charts.
_SERIES = text(
    """
    SELECT date_bin(make_interval(secs => :step), minute, TIMESTAMPTZ '2000-01-01') AS at,
           sum(sent) AS sent, sum(hard_bounces) AS hard_bounces,
           sum(complaints) AS complaints
      FROM reputation_minutes
     WHERE (CAST(:mail_class AS text) IS NULL OR mail_class = CAST(:mail_class AS text))
       AND minute >= now() - make_interval(secs => :span)
     GROUP BY 1 ORDER BY 1
    """
)


async def series(db: Db, mail_class: str | None, span_seconds: int, step_seconds: int) -> list[Any]:
    """(bin start, sent, hard bounces, complaints) of one class (None: all) per bin."""
    return list(
        await db.execute(
            _SERIES, {"mail_class": mail_class, "span": span_seconds, "step": step_seconds}
        )
    )


_OPEN_CLASS_PAUSES = text(
    "SELECT DISTINCT mail_class FROM auto_pauses"
    " WHERE scope = 'mail_class' AND resumed_at IS NULL"
    " AND created_at >= now() - interval '24 hours'"
)


async def paused_classes(db: Db) -> set[str]:
    return {r.mail_class for r in await db.execute(_OPEN_CLASS_PAUSES)}


_RECENT_PAUSES = text(
    "SELECT id, scope, mail_class, campaign_id, campaigns, reason, created_at, resumed_at"
    " FROM auto_pauses ORDER BY id DESC LIMIT :limit"
)


async def recent_pauses(db: Db, limit: int = 20) -> list[Any]:
    return list(await db.execute(_RECENT_PAUSES, {"limit": limit}))


_RECENT_CAMPAIGNS = text(
    """
    SELECT c.id, c.name, c.mail_class, c.status, c.paused_reason, c.created_at,
           s.recipients, s.queued, s.sent, s.failed, s.suppressed, s.delivered, s.bounced,
           s.complained, s.unique_opened, s.human_opened, s.human_clicked, s.retried
      FROM campaigns c JOIN campaign_stats s ON s.campaign_id = c.id
     ORDER BY (c.status IN ('sending', 'paused', 'scheduled')) DESC, c.id DESC
     LIMIT :limit
    """
)


async def recent_campaigns(db: Db, limit: int = 20) -> list[Any]:
    """Campaigns under way first, then the newest."""
    return list(await db.execute(_RECENT_CAMPAIGNS, {"limit": limit}))


# Minute buckets older than the last two hours are folded into one bucket per hour (the
# row at the hour's first minute): a week of rollups stays a few thousand rows per
# campaign and region, so the checks and reads stay cheap. Only the 1 h window needs minute
# buckets; the 24 h and 7 d windows then leave out the part of an hour at their old edge.
# Writers touch the current minute (or, for a late event, an old minute that the next
# round folds in), never the hour rows being written here.
_COMPACT = text(
    """
    WITH old AS (
        DELETE FROM reputation_minutes
         WHERE minute < date_trunc('hour', now()) - interval '1 hour'
           AND minute <> date_trunc('hour', minute)
        RETURNING *
    )
    INSERT INTO reputation_minutes AS t
           (minute, mail_class, region, configuration_set, campaign_id, sent, delivered,
            hard_bounces, soft_bounces, complaints)
    SELECT date_trunc('hour', minute), mail_class, region, configuration_set, campaign_id,
           sum(sent), sum(delivered), sum(hard_bounces), sum(soft_bounces), sum(complaints)
      FROM old
     GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5
    ON CONFLICT (minute, mail_class, region, configuration_set, campaign_id)
    DO UPDATE SET sent = t.sent + EXCLUDED.sent, delivered = t.delivered + EXCLUDED.delivered,
                  hard_bounces = t.hard_bounces + EXCLUDED.hard_bounces,
                  soft_bounces = t.soft_bounces + EXCLUDED.soft_bounces,
                  complaints = t.complaints + EXCLUDED.complaints
    RETURNING 1
    """
)


async def compact(db: Db) -> int:
    """Fold old minute buckets into hour buckets; the number of hour rows written."""
    return len(list(await db.execute(_COMPACT)))
