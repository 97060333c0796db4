"""A campaign's results read from the engagement rollups (never by scanning its events): its
links, providers, timeline, the recipients' export, and the retry of failed recipients."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

Db = AsyncSession | AsyncConnection


# -- reports (rollups only: a million-recipient campaign reads a few thousand rows) ------

_LINKS = text(
    """
    SELECT link, tags, clicks, clickers, human_clickers FROM campaign_links
     WHERE campaign_id = :c AND (CAST(:after AS text) IS NULL OR link > :after)
     ORDER BY link LIMIT :n
    """
)


async def links(db: Db, campaign_id: int, after: str | None, n: int) -> list[Any]:
    return list(await db.execute(_LINKS, {"c": campaign_id, "after": after, "n": n}))


# recipient domains grouped into providers: the fixed map of consumer domains first
# (engagement.providers), then the provider named by the domain's MX (domain_mx, kept by
# engagement.mx), else the domain itself; the join is over distinct domains. Provider names
# compare bytewise (COLLATE "C"): the order cursors follow, and no locale-aware sort
_MAP = """
    map AS (
        SELECT * FROM unnest(CAST(:map_domains AS text[]), CAST(:map_providers AS text[]))
                 AS m(domain, provider)
    )"""
_CAMPAIGN_PROVIDERS = text(
    f"""
    WITH {_MAP},
    grouped AS (
        SELECT coalesce(map.provider, mx.provider, r.domain) COLLATE "C" AS provider,
               count(*) AS domains, sum(r.delivered) AS delivered, sum(r.bounced) AS bounced,
               sum(r.complained) AS complained, sum(r.delayed) AS delayed,
               sum(r.opened) AS opened
          FROM campaign_domains r LEFT JOIN map ON map.domain = r.domain
               LEFT JOIN domain_mx mx ON mx.domain = r.domain
         WHERE r.campaign_id = :c
         GROUP BY 1
    )
    SELECT * FROM grouped
     WHERE CAST(:after AS text) IS NULL OR provider > CAST(:after AS text) COLLATE "C"
     ORDER BY provider LIMIT :n
    """  # noqa: S608
)
# per mail class and window (the last 24 hours, the last 7 days), its ``:n`` busiest
# providers: one scan of the week's domain_hours, each domain summed per window
_CLASS_PROVIDERS = text(
    f"""
    WITH {_MAP},
    parts AS (
        SELECT mail_class, domain,
               hour >= date_trunc('hour', now()) - interval '24 hours' AS recent,
               sum(delivered) AS delivered, sum(bounced) AS bounced,
               sum(complained) AS complained, sum(delayed) AS delayed, sum(opened) AS opened
          FROM domain_hours
         WHERE hour >= date_trunc('hour', now()) - interval '7 days'
         GROUP BY 1, 2, 3
    ),
    windowed AS (
        SELECT '24h' AS span, mail_class, domain, delivered, bounced, complained, delayed,
               opened
          FROM parts WHERE recent
        UNION ALL
        SELECT '7d', mail_class, domain, sum(delivered), sum(bounced), sum(complained),
               sum(delayed), sum(opened)
          FROM parts GROUP BY mail_class, domain
    ),
    grouped AS (
        SELECT r.span, r.mail_class,
               coalesce(map.provider, mx.provider, r.domain) COLLATE "C" AS provider,
               count(*) AS domains, sum(r.delivered) AS delivered, sum(r.bounced) AS bounced,
               sum(r.complained) AS complained, sum(r.delayed) AS delayed,
               sum(r.opened) AS opened
          FROM windowed r LEFT JOIN map ON map.domain = r.domain
               LEFT JOIN domain_mx mx ON mx.domain = r.domain
         GROUP BY 1, 2, 3
    )
    SELECT * FROM (
        SELECT grouped.*, row_number() OVER (PARTITION BY span, mail_class
                                             ORDER BY delivered + bounced DESC, provider) AS rank
          FROM grouped) ranked
     WHERE rank <= :n
     ORDER BY span, mail_class, rank
    """  # noqa: S608
)


async def campaign_providers(
    db: Db, campaign_id: int, mapping: dict[str, list[str]], after: str | None, n: int
) -> list[Any]:
    params = {"c": campaign_id, "after": after, "n": n, **mapping}
    return list(await db.execute(_CAMPAIGN_PROVIDERS, params))


async def class_providers(db: Db, mapping: dict[str, list[str]], n: int) -> list[Any]:
    """Each mail class's ``n`` busiest providers over 24 hours and over 7 days."""
    return list(await db.execute(_CLASS_PROVIDERS, {"n": n, **mapping}))


_TIMELINE = text(
    """
    SELECT bucket, sent, delivered, opens, clicks, bounced, complained FROM campaign_timeline
     WHERE campaign_id = :c AND (CAST(:after AS timestamptz) IS NULL OR bucket > :after)
     ORDER BY bucket LIMIT :n
    """
)


async def timeline(db: Db, campaign_id: int, after: Any, n: int) -> list[Any]:
    return list(await db.execute(_TIMELINE, {"c": campaign_id, "after": after, "n": n}))


# The recipients of a campaign whose ids lie in [lo, hi), in id order, as CSV made by
# PostgreSQL (COPY … TO STDOUT): a million rows never pass through Python row objects.
# Timestamps in ISO 8601, UTC. The columns: reports.RECIPIENT_COLUMNS. The id range is
# given to both tables: without it the planner hashes all of message_engagement.
_TIME = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"')"
RECIPIENTS_COPY = f"""
        SELECT m.email, m.status, {_TIME.format("m.sent_at")}, m.error,
               {_TIME.format("m.retried_at")}, coalesce(e.opens, 0),
               coalesce(e.human_opens, 0), {_TIME.format("e.first_open_at")},
               coalesce(e.clicks, 0), coalesce(e.human_clicks, 0),
               {_TIME.format("e.first_click_at")}
          FROM messages m
          LEFT JOIN message_engagement e
                 ON e.message_id = m.id AND e.message_id >= $1 AND e.message_id < $2
         WHERE m.id >= $1 AND m.id < $2 AND m.campaign_id = $3
         ORDER BY m.id
"""  # noqa: S608


async def copy_recipients(driver: Any, campaign_id: int, lo: int, hi: int) -> bytes:
    """CSV rows of the campaign's messages with ids in [lo, hi); ``driver``: asyncpg."""
    parts: list[bytes] = []

    async def keep(data: bytes) -> None:
        parts.append(data)

    # asyncpg quotes the arguments into COPY (SELECT …) TO STDOUT, which takes none
    await driver.copy_from_query(RECIPIENTS_COPY, lo, hi, campaign_id, output=keep, format="csv")
    return b"".join(parts)


# -- retry ------------------------------------------------------------------------------

# A failed message is retried when its failure was not its own: only what the send path
# gave up on after transient errors (timeouts, 5xx, connection) is "gave up after …";
# rejections for content, invalid addresses and render errors keep their SES or template
# reason and stay failed. Never one retried before, never an erased, suppressed (for the
# class) or unsubscribed (marketing) recipient. The counters move in the same statement.
RETRYABLE = "gave up after %"
_RETRY = text(
    """
    WITH again AS (
        UPDATE messages m
           SET status = 'queued', error = NULL, attempts = 0, maybe_sent = false,
               lease_token = NULL, lease_until = NULL, next_attempt_at = now(),
               retried_at = now()
         WHERE m.campaign_id = :c AND m.status = 'failed' AND m.retried_at IS NULL
           AND m.error LIKE :retryable AND m.email <> ''
           AND NOT EXISTS (SELECT 1 FROM suppressions s
                            WHERE s.email = m.email AND s.scope = ANY(CAST(:scopes AS text[])))
           AND NOT (:marketing AND EXISTS (SELECT 1 FROM contacts ct
                                             WHERE ct.id = m.contact_id
                                               AND ct.status = 'unsubscribed'))
        RETURNING m.id
    ), n AS (SELECT count(*) AS n FROM again)
    UPDATE campaign_stats s
       SET failed = s.failed - n.n, queued = s.queued + n.n, retried = s.retried + n.n
      FROM n WHERE s.campaign_id = :c
    RETURNING n.n
    """
)


async def retry_failed(db: Db, campaign_id: int, scopes: list[str], marketing: bool) -> int:
    """Queue the campaign's retryable failed messages again; how many."""
    params = {
        "c": campaign_id,
        "scopes": scopes,
        "marketing": marketing,
        "retryable": RETRYABLE,
    }
    found = (await db.execute(_RETRY, params)).scalar_one_or_none()
    return int(found or 0)
