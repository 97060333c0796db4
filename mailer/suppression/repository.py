"""Suppressions and unsubscribes: the SQL. Statements elsewhere that must judge or write
suppressions in the same statement as their own work (the send path's claim and record,
the feedback loop's set-based effects, an erasure) compose the fragments of
:mod:`mailer.models.suppression`, beside the table and its scopes rule, so each rule is
written once."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import Suppression
from mailer.models.subscription import UNSUBSCRIBE_TOPIC_SQL
from mailer.models.suppression import UNSUBSCRIBE_EVENT_CTE, scopes_for


async def get(session: AsyncSession, email: str) -> Suppression | None:
    return await session.get(Suppression, email)


async def put(
    session: AsyncSession, email: str, reason: str, scope: str
) -> tuple[Suppression, bool]:
    """Create or replace a manual suppression; (row, created). A person may narrow a scope."""
    inserted = (
        pg_insert(Suppression)
        .values(email=email, reason=reason, scope=scope, source="manual")
        .on_conflict_do_update(
            index_elements=["email"], set_={"reason": reason, "scope": scope, "source": "manual"}
        )
        .returning(Suppression, text("(xmax = 0) AS created"))
    )
    row = (await session.execute(inserted)).one()
    return row[0], bool(row[1])


async def remove(session: AsyncSession, email: str) -> bool:
    result = await session.execute(delete(Suppression).where(Suppression.email == email))
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def page(
    session: AsyncSession,
    after: str | None,
    limit: int,
    reason: str | None,
    scope: str | None,
    source: str | None,
) -> list[Suppression]:
    query = select(Suppression).order_by(Suppression.email).limit(limit)
    if after is not None:
        query = query.where(Suppression.email > after)
    if reason is not None:
        # reasons carry details ("permanent bounce: General"): match their beginning
        escaped = reason.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(Suppression.reason.ilike(f"{escaped}%", escape="\\"))
    if scope is not None:
        query = query.where(Suppression.scope == scope)
    if source is not None:
        query = query.where(Suppression.source == source)
    return list((await session.execute(query)).scalars())


# One statement, as the feedback loop's: the unsubscribe event is stored once per message
# (dedup key), and only a newly stored one counts in the campaign's `unsubscribed`; the
# contact is unsubscribed and the address suppressed for marketing (only ever widened:
# an existing suppression stays as it is), so a repeat changes nothing.
_UNSUBSCRIBE = text(
    f"""
    WITH m AS (
        SELECT id, campaign_id, email, mail_class, region FROM messages WHERE id = :id
    ),
    {UNSUBSCRIBE_EVENT_CTE.format(returning="campaign_id, email")},
    contact AS (
        UPDATE contacts c SET status = 'unsubscribed', unsubscribed_at = now(), updated_at = now()
          FROM m WHERE c.email = m.email AND c.status = 'subscribed'
        RETURNING c.id
    ),
    contact_recorded AS (
        INSERT INTO contact_status_changes (contact_id, status, source)
        SELECT id, 'unsubscribed', 'unsubscribe_link' FROM contact
    ),
    suppressed AS (
        INSERT INTO suppressions (email, reason, scope, source)
        SELECT email, 'unsubscribed', 'marketing', 'unsubscribe' FROM m WHERE email <> ''
        ON CONFLICT (email) DO NOTHING
    ),
    counted AS (
        UPDATE campaign_stats s SET unsubscribed = s.unsubscribed + 1
          FROM ev WHERE s.campaign_id = ev.campaign_id
    )
    SELECT (SELECT count(*) FROM m) AS found, (SELECT count(*) FROM ev) AS new
    """  # noqa: S608 - constant fragments
)


async def unsubscribe(
    session: AsyncSession, message_id: int, how: str, data: str
) -> tuple[bool, bool]:
    """(the message exists, this was its first unsubscribe)."""
    row: Any = (
        await session.execute(_UNSUBSCRIBE, {"id": message_id, "how": how, "data": data})
    ).one()
    return bool(row.found), bool(row.new)


_UNSUBSCRIBE_TOPIC = text(UNSUBSCRIBE_TOPIC_SQL)


async def unsubscribe_topic(
    session: AsyncSession, message_id: int, how: str, data: str
) -> tuple[bool, bool]:
    """As :func:`unsubscribe` for a topic campaign's message: it leaves that topic only.
    (False, False) for any other message."""
    row: Any = (
        await session.execute(_UNSUBSCRIBE_TOPIC, {"id": message_id, "how": how, "data": data})
    ).one()
    return bool(row.found), bool(row.new)


async def message_exists(session: AsyncSession, message_id: int) -> bool:
    found = await session.execute(text("SELECT 1 FROM messages WHERE id = :id"), {"id": message_id})
    return found.first() is not None


# -- imports (a CSV file, the SES account-level suppression list) ---------------------------

# (row, email, reason, scope, created_at or None for now)
ImportRow = tuple[int, str, str, str, datetime | None]

_STAGE = text(
    "CREATE TEMP TABLE IF NOT EXISTS suppression_import_rows"
    " (row integer NOT NULL, email text NOT NULL, reason text NOT NULL, scope text NOT NULL,"
    "  created_at timestamptz) ON COMMIT DROP"
)


async def stager(session: AsyncSession) -> Callable[[list[ImportRow]], Coroutine[Any, Any, None]]:
    """A function that COPYs rows of an import into a temporary table of the session's
    transaction (dropped at its end: a 413 or a dropped upload leaves nothing)."""
    await session.execute(_STAGE)
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None  # the session's connection is checked out and open

    async def stage(rows: list[ImportRow]) -> None:
        await raw.copy_records_to_table(
            "suppression_import_rows",
            records=rows,
            columns=["row", "email", "reason", "scope", "created_at"],
        )

    return stage


# The staged rows into the list in one statement. The first row of an address counts (its
# repeats are reported by `import_repeats`). A suppression is only ever widened, as the
# feedback loop widens it: a new address is inserted with its reason, scope and date; an
# existing `marketing` one becomes `all` (reason and source of the import, date kept) when
# the import says `all`; anything else stays as it is.
_MERGE = text(
    """
    WITH firsts AS (
        SELECT DISTINCT ON (email) email, reason, scope, created_at
          FROM suppression_import_rows ORDER BY email, row
    ),
    merged AS (
        INSERT INTO suppressions AS s (email, reason, scope, source, created_at)
        SELECT email, reason, scope, :source, coalesce(created_at, now()) FROM firsts
        ON CONFLICT (email) DO UPDATE
           SET scope = 'all', reason = excluded.reason, source = excluded.source
         WHERE s.scope <> 'all' AND excluded.scope = 'all'
        RETURNING (xmax = 0) AS created
    )
    SELECT (SELECT count(*) FROM merged WHERE created) AS created,
           (SELECT count(*) FROM merged WHERE NOT created) AS widened,
           (SELECT count(*) FROM firsts) AS addresses
    """
)

_REPEATS = text(
    """
    SELECT row, email, first_row, count(*) OVER () AS repeats FROM (
        SELECT row, email, min(row) OVER (PARTITION BY email) AS first_row
          FROM suppression_import_rows) r
     WHERE row > first_row ORDER BY row LIMIT :limit
    """
)


async def merge_import(session: AsyncSession, source: str) -> tuple[int, int, int, int]:
    """Merge the staged rows: (created, widened, unchanged, distinct) addresses."""
    # the sort of a 100,000-row file by address stays in memory
    await session.execute(text("SET LOCAL work_mem = '64MB'"))
    row: Any = (await session.execute(_MERGE, {"source": source})).one()
    created, widened, addresses = int(row.created), int(row.widened), int(row.addresses)
    return created, widened, addresses - created - widened, addresses


async def import_repeats(
    session: AsyncSession, limit: int
) -> tuple[int, list[tuple[int, str, int]]]:
    """How many staged rows repeat an earlier row's address, and the first ``limit`` of
    them as (row, email, first row)."""
    rows = list(await session.execute(_REPEATS, {"limit": max(limit, 1)}))
    count = int(rows[0].repeats) if rows else 0
    return count, [(r.row, r.email, r.first_row) for r in rows[:limit]]


_SUPPRESSED = text(
    """
    SELECT email FROM suppressions
     WHERE email = ANY(CAST(:emails AS text[])) AND scope = ANY(CAST(:scopes AS text[]))
    """
)


async def suppressed(session: AsyncSession, emails: list[str], mail_class: str) -> set[str]:
    """Those of ``emails`` that mail of ``mail_class`` must not reach."""
    rows = await session.execute(_SUPPRESSED, {"emails": emails, "scopes": scopes_for(mail_class)})
    return {r.email for r in rows}


_COUNT_BY_SCOPE = text("SELECT scope, count(*) AS n FROM suppressions GROUP BY scope")


async def count_by_scope(session: AsyncSession) -> dict[str, int]:
    return {r.scope: int(r.n) for r in await session.execute(_COUNT_BY_SCOPE)}
