"""The deliverer's SQL: claiming due deliveries with a lease, recording their outcomes, the
endpoints' runs of failures, the backlog and the sweep of old rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

Db = AsyncSession | AsyncConnection


@dataclass(slots=True)
class Claimed:
    id: int
    endpoint_id: int
    webhook_id: str
    attempts: int  # including the one about to be made
    body: str
    url: str
    secrets: list[str]


# Per-message order: a delivery is due only as the first of its message's events still
# pending for the endpoint. Written as that (a top-1 read of
# ``ix_webhook_deliveries_message_pending``), not as "no pending one with a smaller id": the
# planner served that NOT EXISTS from the due index and read every pending row of the
# endpoint for each candidate, so a dead endpoint's growing backlog slowed every claim.
_IN_MESSAGE_ORDER = """(d.message_id IS NULL OR d.id = (
    SELECT min(p.id) FROM webhook_deliveries p
     WHERE p.endpoint_id = d.endpoint_id AND p.message_id = d.message_id
       AND p.status = 'pending' AND p.message_id IS NOT NULL))"""

# Per endpoint that is enabled and not held, its due deliveries, oldest due first, at most
# what is left of its cap of requests in flight (``:cap`` less this deliverer's
# ``:in_flight``): one ordered index scan per endpoint (``ix_webhook_deliveries_due``), so
# an endpoint with a large backlog never hides the others' events. A delivery whose
# message has an earlier event still pending for the same endpoint waits for it
# (per-message order). The candidates are read without locks, then locked with SKIP
# LOCKED (several deliverers share the due rows), the state re-checked on the locked row.
_CLAIM = text(
    f"""
    WITH flying AS (
        SELECT * FROM unnest(CAST(:flying_ids AS bigint[]), CAST(:flying_n AS int[]))
          AS f(endpoint_id, n)
    ), candidates AS (
        SELECT c.id, c.next_attempt_at
          FROM webhook_endpoints e
          LEFT JOIN flying f ON f.endpoint_id = e.id
          CROSS JOIN LATERAL (
              SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
               WHERE d.endpoint_id = e.id AND d.status = 'pending'
                 AND d.next_attempt_at <= now()
                 AND (d.lease_until IS NULL OR d.lease_until < now())
                 AND {_IN_MESSAGE_ORDER}
               ORDER BY d.next_attempt_at, d.id
               LIMIT GREATEST(:cap - COALESCE(f.n, 0), 0)) c
         WHERE e.enabled AND (e.hold_until IS NULL OR e.hold_until <= now())
         ORDER BY c.next_attempt_at, c.id
         LIMIT :limit
    ), due AS (
        SELECT d.id FROM webhook_deliveries d
         WHERE d.id IN (SELECT id FROM candidates)
           AND d.status = 'pending' AND (d.lease_until IS NULL OR d.lease_until < now())
         ORDER BY d.id
           FOR UPDATE SKIP LOCKED
    )
    UPDATE webhook_deliveries d
       SET lease_token = :token, lease_until = now() + make_interval(secs => :lease),
           attempts = d.attempts + 1
      FROM due, webhook_endpoints e
     WHERE d.id = due.id AND e.id = d.endpoint_id
    RETURNING d.id, d.endpoint_id, d.webhook_id, d.attempts, CAST(d.payload AS text) AS body,
              e.url, e.secret,
              CASE WHEN e.previous_secret_until > now() THEN e.previous_secret END AS previous
    """  # noqa: S608 - a constant fragment
)


async def claim(
    db: Db, token: str, lease: float, limit: int, cap: int, in_flight: dict[int, int]
) -> list[Claimed]:
    """Due deliveries, leased to ``token``; ``in_flight``: endpoint → requests under way."""
    rows = await db.execute(
        _CLAIM,
        {
            "token": token,
            "lease": lease,
            "limit": limit,
            "cap": cap,
            "flying_ids": list(in_flight),
            "flying_n": list(in_flight.values()),
        },
    )
    return [
        Claimed(
            r.id,
            r.endpoint_id,
            r.webhook_id,
            r.attempts,
            r.body,
            r.url,
            [r.secret] + ([r.previous] if r.previous else []),
        )
        for r in rows
    ]


# outcome per delivery: ok, or retry after ``delay`` seconds, or dead (delay NULL)
_RECORD = text(
    """
    WITH r AS (
        SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:oks AS boolean[]),
                             CAST(:codes AS int[]), CAST(:errors AS text[]),
                             CAST(:bodies AS text[]), CAST(:delays AS float8[]))
          AS r(id, ok, code, error, body, delay)
    )
    UPDATE webhook_deliveries d
       SET status = CASE WHEN r.ok THEN 'delivered'
                         WHEN r.delay IS NULL THEN 'dead' ELSE 'pending' END,
           last_status_code = r.code, last_error = r.error, last_response = r.body,
           last_attempt_at = now(),
           delivered_at = CASE WHEN r.ok THEN now() ELSE d.delivered_at END,
           next_attempt_at = CASE WHEN r.ok OR r.delay IS NULL THEN d.next_attempt_at
                                  ELSE now() + make_interval(secs => r.delay) END,
           lease_token = NULL, lease_until = NULL
      FROM r
     WHERE d.id = r.id AND d.lease_token = :token
    RETURNING d.status, extract(epoch FROM now() - d.created_at) AS age
    """
)


@dataclass(slots=True)
class Outcome:
    id: int
    endpoint_id: int
    ok: bool
    code: int | None
    error: str | None
    body: str | None
    delay: float | None  # None and not ok: dead
    hold: bool  # the endpoint itself looks down (no answer, 429, 5xx)


async def record(db: Db, token: str, outcomes: list[Outcome]) -> list[Any]:
    """The outcomes under ``token``'s lease; (status, seconds since the event) of each."""
    rows = await db.execute(
        _RECORD,
        {
            "token": token,
            "ids": [o.id for o in outcomes],
            "oks": [o.ok for o in outcomes],
            "codes": [o.code for o in outcomes],
            "errors": [o.error for o in outcomes],
            "bodies": [o.body for o in outcomes],
            "delays": [o.delay for o in outcomes],
        },
    )
    return list(rows)


# per endpoint: the last outcome of the batch decides (a success ends a run of failures);
# a run of failures holds the endpoint (doubling, capped) and a long one disables it
_ENDPOINT_OUTCOMES = text(
    """
    WITH r AS (
        SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:oks AS boolean[]),
                             CAST(:failures AS int[]), CAST(:holds AS boolean[]))
          AS r(id, ok, failures, hold)
    )
    UPDATE webhook_endpoints e
       SET consecutive_failures = CASE WHEN r.ok THEN 0
                                       ELSE e.consecutive_failures + r.failures END,
           failing_since = CASE WHEN r.ok THEN NULL ELSE COALESCE(e.failing_since, now()) END,
           hold_until = CASE WHEN r.ok OR NOT r.hold THEN NULL
                             ELSE now() + make_interval(secs => LEAST(:hold_max,
                                  :hold_base * power(2, LEAST(e.consecutive_failures, 16))))
                        END,
           enabled = e.enabled AND (r.ok
                     OR e.consecutive_failures + r.failures < :disable_failures
                     OR COALESCE(e.failing_since, now())
                        > now() - make_interval(secs => :disable_seconds)),
           disabled_reason = CASE
               WHEN e.enabled AND NOT r.ok
                AND e.consecutive_failures + r.failures >= :disable_failures
                AND COALESCE(e.failing_since, now())
                    <= now() - make_interval(secs => :disable_seconds)
               THEN 'disabled after ' || (e.consecutive_failures + r.failures)
                    || ' failed attempts in a row since '
                    || to_char(COALESCE(e.failing_since, now()) AT TIME ZONE 'UTC',
                               'YYYY-MM-DD HH24:MI"Z"')
               ELSE e.disabled_reason END
      FROM r
     WHERE e.id = r.id
    RETURNING e.id, e.enabled, e.disabled_reason
    """
)


async def endpoint_outcomes(
    db: Db,
    outcomes: list[Outcome],
    *,
    hold_base: float,
    hold_max: float,
    disable_failures: int,
    disable_seconds: float,
) -> list[Any]:
    last: dict[int, Outcome] = {}
    failures: dict[int, int] = {}
    for o in outcomes:
        last[o.endpoint_id] = o
        failures[o.endpoint_id] = 0 if o.ok else failures.get(o.endpoint_id, 0) + 1
    ids = sorted(last)  # one lock order for every deliverer
    rows = await db.execute(
        _ENDPOINT_OUTCOMES,
        {
            "ids": ids,
            "oks": [last[i].ok for i in ids],
            "failures": [failures[i] for i in ids],
            "holds": [last[i].hold for i in ids],
            "hold_base": hold_base,
            "hold_max": hold_max,
            "disable_failures": disable_failures,
            "disable_seconds": disable_seconds,
        },
    )
    return list(rows)


_BACKLOG = text(
    """
    SELECT count(*) AS pending,
           COALESCE(extract(epoch FROM now() - min(created_at)), 0) AS oldest_seconds,
           (SELECT count(*) FROM webhook_endpoints WHERE NOT enabled) AS disabled
      FROM webhook_deliveries WHERE status = 'pending'
    """
)


async def backlog(db: Db) -> Any:
    """Pending deliveries and the age of the oldest (the metrics' backlog)."""
    return (await db.execute(_BACKLOG)).one()


_ANY_DUE = text(
    f"""
    SELECT EXISTS (
        SELECT 1 FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
         WHERE d.status = 'pending' AND d.next_attempt_at <= now()
           AND (d.lease_until IS NULL OR d.lease_until < now())
           AND e.enabled AND (e.hold_until IS NULL OR e.hold_until <= now())
           AND {_IN_MESSAGE_ORDER})
    """  # noqa: S608 - a constant fragment
)


async def any_due(db: Db) -> bool:
    """Whether some delivery could be claimed now (or waits only for its message's order)."""
    return bool((await db.execute(_ANY_DUE)).scalar_one())


_SWEEP = text(
    """
    DELETE FROM webhook_deliveries WHERE id IN (
        SELECT id FROM webhook_deliveries
         WHERE status <> 'pending' AND created_at < now() - make_interval(days => :days)
         ORDER BY id  -- the oldest first: the primary key's order, stopping at the limit
         LIMIT :limit)
    """
)


async def sweep(db: Db, days: float, limit: int) -> int:
    """Forget up to ``limit`` delivered or dead deliveries older than ``days``."""
    result = await db.execute(_SWEEP, {"days": int(days), "limit": limit})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
