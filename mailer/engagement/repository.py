"""Engagement SQL: the rollups fed by the feedback loop, and the per-message recompute.

Two kinds of statement:

* CTE fragments folded into the feedback loop's one statement per event type
  (``webhook.repository``), fed by the events that statement really inserted
  (``inserted``: a replay counts nothing): the 10-minute timeline of opens and clicks,
  and the feedback per recipient domain (campaign totals, and per mail class and hour).
* :data:`LOCK` and :data:`REFRESH`, run after the Open and Click statements for the
  messages they touched: each message's engagement is recomputed from all its events
  (so the scanner rule, which looks at several clicks, holds whatever order they came
  in), and the campaign counters and per-link rollups move by the difference between
  the stored and the recomputed rows. The rows are locked first, in id order, in a
  statement of their own: the recompute then runs on a snapshot taken after any other
  worker's recompute of the same message committed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailer.engagement.rules import SCANNER_WINDOW_SECONDS

Db = AsyncSession | AsyncConnection

# the longest link kept as a key (a btree entry holds ~2,700 bytes)
MAX_LINK = 2000
BUCKET = "10 minutes"
SIMULATOR = "%@simulator.amazonses.com"


# the bucket of a time: 10 minutes from a fixed origin
def _bucket(at: str) -> str:
    return f"date_bin('{BUCKET}', {at}, TIMESTAMPTZ '2000-01-01 00:00Z')"


def timeline_sends() -> str:
    """The ``timelined`` CTE of the send path's record statement (``sending.repository``):
    its messages SES accepted, per campaign, in the current 10 minutes."""
    return f"""
    , timelined AS (
        INSERT INTO campaign_timeline AS t (campaign_id, bucket, sent)
        SELECT campaign_id, {_bucket("now()")}, count(*) FROM moved
         WHERE outcome = 'sent' AND campaign_id IS NOT NULL
         GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (campaign_id, bucket) DO UPDATE SET sent = t.sent + EXCLUDED.sent
    )"""  # noqa: S608


def timeline_rollup(column: str) -> str:
    """The ``timeline`` CTE: inserted events counted per campaign and 10-minute bucket."""
    return f"""
, timeline AS (
    INSERT INTO campaign_timeline AS t (campaign_id, bucket, {column})
    SELECT campaign_id, {_bucket("occurred_at")}, count(*)
      FROM inserted WHERE campaign_id IS NOT NULL
     GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (campaign_id, bucket) DO UPDATE SET {column} = t.{column} + EXCLUDED.{column}
)"""  # noqa: S608


def domain_rollup(column: str) -> str:
    """The ``domains`` CTEs: messages getting their first event of the statement's type
    (``:type``), counted per recipient domain, for the campaign and for the mail class's
    hour. Mailbox-simulator mail is left out, as reputation leaves it out."""
    return f"""
, domain_firsts AS (
    SELECT i.campaign_id, i.mail_class, i.message_id, i.occurred_at,
           lower(split_part(i.email, '@', 2)) AS domain
      FROM inserted i
     WHERE i.message_id IS NOT NULL AND i.mail_class IS NOT NULL AND i.email LIKE '%@%'
       AND i.email NOT LIKE '{SIMULATOR}'
       AND NOT EXISTS (SELECT 1 FROM events e
                        WHERE e.message_id = i.message_id AND e.type = :type)
),
domains_counted AS (
    INSERT INTO campaign_domains AS t (campaign_id, domain, {column})
    SELECT campaign_id, domain, count(DISTINCT message_id) FROM domain_firsts
     WHERE campaign_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (campaign_id, domain) DO UPDATE SET {column} = t.{column} + EXCLUDED.{column}
),
domain_hours_counted AS (
    INSERT INTO domain_hours AS t (hour, mail_class, domain, {column})
    SELECT date_trunc('hour', occurred_at), mail_class, domain, count(DISTINCT message_id)
      FROM domain_firsts GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (hour, mail_class, domain) DO UPDATE SET {column} = t.{column} + EXCLUDED.{column}
)"""  # noqa: S608


# the messages the events name, their engagement rows created or locked, in id order
LOCK = text(
    """
    INSERT INTO message_engagement AS me (message_id, campaign_id)
    SELECT id, campaign_id FROM messages
     WHERE ses_message_id = ANY(CAST(:sids AS text[])) ORDER BY id
    ON CONFLICT (message_id) DO UPDATE SET campaign_id = EXCLUDED.campaign_id
    RETURNING message_id
    """
)

# Each message's opens and clicks recomputed from its events (rules: engagement.rules),
# stored, and the differences carried to campaign_stats and campaign_links. ``old`` reads
# the rows as they were before this statement; every target row is touched once.
REFRESH = text(
    f"""
WITH ids AS (SELECT unnest(CAST(:ids AS bigint[])) AS id),
ev AS (
    SELECT e.message_id, e.type, e.occurred_at, left(e.data->>'link', {MAX_LINK}) AS link,
           e.data->>'automated' AS automated, e.data->'linkTags' AS tags
      FROM events e
     WHERE e.message_id = ANY(CAST(:ids AS bigint[])) AND e.type IN ('open', 'click')
),
judged AS (
    SELECT ev.*, ev.automated IS NULL AND NOT (ev.type = 'click' AND EXISTS (
               SELECT 1 FROM ev o
                WHERE o.message_id = ev.message_id AND o.type = 'click'
                  AND o.link IS DISTINCT FROM ev.link
                  AND o.occurred_at BETWEEN ev.occurred_at - make_interval(secs => :window)
                                        AND ev.occurred_at + make_interval(secs => :window)))
           AS human
      FROM ev
),
per_message AS (
    SELECT message_id,
           count(*) FILTER (WHERE type = 'open') AS opens,
           count(*) FILTER (WHERE type = 'click') AS clicks,
           count(*) FILTER (WHERE type = 'open' AND human) AS human_opens,
           count(*) FILTER (WHERE type = 'click' AND human) AS human_clicks,
           min(occurred_at) FILTER (WHERE type = 'open') AS first_open_at,
           min(occurred_at) FILTER (WHERE type = 'click') AS first_click_at,
           min(occurred_at) FILTER (WHERE type = 'open' AND human) AS first_human_open_at,
           min(occurred_at) FILTER (WHERE type = 'click' AND human) AS first_human_click_at
      FROM judged GROUP BY message_id
),
per_link AS (
    SELECT message_id, jsonb_object_agg(link, jsonb_build_array(n, h)) AS links
      FROM (SELECT message_id, link, count(*) AS n, count(*) FILTER (WHERE human) AS h
              FROM judged WHERE type = 'click' AND link IS NOT NULL GROUP BY 1, 2) x
     GROUP BY message_id
),
new AS (
    SELECT ids.id AS message_id, coalesce(p.opens, 0) AS opens,
           coalesce(p.clicks, 0) AS clicks, coalesce(p.human_opens, 0) AS human_opens,
           coalesce(p.human_clicks, 0) AS human_clicks, p.first_open_at, p.first_click_at,
           p.first_human_open_at, p.first_human_click_at,
           coalesce(l.links, CAST('{{}}' AS jsonb)) AS links
      FROM ids LEFT JOIN per_message p ON p.message_id = ids.id
      LEFT JOIN per_link l ON l.message_id = ids.id
),
old AS (SELECT * FROM message_engagement WHERE message_id = ANY(CAST(:ids AS bigint[]))),
pairs AS (
    SELECT o.message_id, o.campaign_id,
           o.opens > 0 AS was_opened, n.opens > 0 AS is_opened,
           o.clicks > 0 AS was_clicked, n.clicks > 0 AS is_clicked,
           o.human_opens + o.human_clicks > 0 AS was_human_opened,
           n.human_opens + n.human_clicks > 0 AS is_human_opened,
           o.human_clicks > 0 AS was_human_clicked, n.human_clicks > 0 AS is_human_clicked,
           o.links AS old_links, n.links AS new_links
      FROM old o JOIN new n USING (message_id)
     WHERE (o.opens, o.clicks, o.human_opens, o.human_clicks, o.links)
           IS DISTINCT FROM (n.opens, n.clicks, n.human_opens, n.human_clicks, n.links)
),
stored AS (
    UPDATE message_engagement me
       SET opens = n.opens, clicks = n.clicks, human_opens = n.human_opens,
           human_clicks = n.human_clicks, first_open_at = n.first_open_at,
           first_click_at = n.first_click_at, first_human_open_at = n.first_human_open_at,
           first_human_click_at = n.first_human_click_at, links = n.links
      FROM new n JOIN pairs p USING (message_id)
     WHERE me.message_id = n.message_id
),
stat_delta AS (
    SELECT campaign_id,
           sum(is_opened::int - was_opened::int) AS unique_opened,
           sum(is_clicked::int - was_clicked::int) AS unique_clicked,
           sum(is_human_opened::int - was_human_opened::int) AS human_opened,
           sum(is_human_clicked::int - was_human_clicked::int) AS human_clicked
      FROM pairs WHERE campaign_id IS NOT NULL GROUP BY campaign_id
),
counted AS (
    UPDATE campaign_stats s
       SET unique_opened = s.unique_opened + d.unique_opened,
           unique_clicked = s.unique_clicked + d.unique_clicked,
           human_opened = s.human_opened + d.human_opened,
           human_clicked = s.human_clicked + d.human_clicked
      FROM stat_delta d
     WHERE s.campaign_id = d.campaign_id
       AND (d.unique_opened, d.unique_clicked, d.human_opened, d.human_clicked)
           <> (0, 0, 0, 0)
),
link_pairs AS (
    SELECT p.campaign_id, k.link, p.old_links -> k.link AS o, p.new_links -> k.link AS n
      FROM pairs p,
           LATERAL (SELECT jsonb_object_keys(p.new_links) AS link
                    UNION SELECT jsonb_object_keys(p.old_links)) k
     WHERE p.campaign_id IS NOT NULL
),
link_delta AS (
    SELECT campaign_id, link,
           sum(coalesce((n->>0)::bigint, 0) - coalesce((o->>0)::bigint, 0)) AS clicks,
           sum((n IS NOT NULL)::int - (o IS NOT NULL)::int) AS clickers,
           sum((coalesce((n->>1)::int, 0) > 0)::int - (coalesce((o->>1)::int, 0) > 0)::int)
               AS human_clickers
      FROM link_pairs GROUP BY 1, 2
),
link_tags AS (
    SELECT DISTINCT ON (p.campaign_id, j.link) p.campaign_id, j.link, j.tags
      FROM judged j JOIN pairs p USING (message_id)
     WHERE j.type = 'click' AND j.link IS NOT NULL AND jsonb_typeof(j.tags) = 'object'
       AND p.campaign_id IS NOT NULL
     ORDER BY p.campaign_id, j.link, j.occurred_at DESC
),
links_counted AS (
    INSERT INTO campaign_links AS t (campaign_id, link, tags, clicks, clickers, human_clickers)
    SELECT d.campaign_id, d.link, coalesce(g.tags, CAST('{{}}' AS jsonb)), d.clicks,
           d.clickers, d.human_clickers
      FROM link_delta d LEFT JOIN link_tags g USING (campaign_id, link)
     WHERE (d.clicks, d.clickers, d.human_clickers) <> (0, 0, 0)
     ORDER BY 1, 2
    ON CONFLICT (campaign_id, link) DO UPDATE
       SET clicks = t.clicks + EXCLUDED.clicks, clickers = t.clickers + EXCLUDED.clickers,
           human_clickers = t.human_clickers + EXCLUDED.human_clickers,
           tags = CASE WHEN EXCLUDED.tags = CAST('{{}}' AS jsonb) THEN t.tags
                       ELSE EXCLUDED.tags END
)
SELECT message_id, campaign_id, is_opened AND NOT was_opened AS first_open,
       is_clicked AND NOT was_clicked AS first_click,
       is_human_opened AND NOT was_human_opened AS first_human_open,
       is_human_clicked AND NOT was_human_clicked AS first_human_click
  FROM pairs
    """  # noqa: S608
)


async def lock(db: Db, ses_message_ids: list[str]) -> list[int]:
    """The ids of the messages the SES ids name, their engagement rows locked."""
    rows = await db.execute(LOCK, {"sids": ses_message_ids})
    return sorted(r.message_id for r in rows)


async def refresh(db: Db, message_ids: list[int]) -> list[Any]:
    """Recompute the engagement of locked messages; the rows that changed."""
    if not message_ids:
        return []
    rows = await db.execute(REFRESH, {"ids": message_ids, "window": SCANNER_WINDOW_SECONDS})
    return list(rows)
