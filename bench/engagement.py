"""Benchmark: a campaign's engagement reports over 1,000,000 recipients and 3,000,000 events.

Seeds (set-based SQL) one completed campaign of ``--recipients`` messages spread over the
big providers and ``--domains`` other domains, sent over six hours; ``--events`` events
(a Delivery per message, then Opens and Clicks on ``--links`` links), and the rollups the
events worker keeps for them (message_engagement, campaign_links, campaign_timeline,
campaign_domains, domain_hours, reputation_minutes), built from those events in SQL, and
the other domains' MX (``domain_mx``: a third Google, a third Microsoft, the rest unknown).
Then times each report as its route runs it (the service functions, on a session): the
campaign with its stats, links, providers, timeline, GET /v1/reputation with the
providers per mail class, and the recipients export (its first chunk and the whole file).
Target (issue 24): each report ≤ 300 ms (the export streams: its first bytes).

    python bench/engagement.py [--recipients 1000000] [--events 3000000] [--repeat 10]
        [--database-url postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_engagement]

The events-applied rate (≥ 2,000/s per worker) is bench/webhook.py's (``--mix engagement``
for a mix that is half opens and clicks).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from mailer.campaign import results as reports  # noqa: E402
from mailer.campaign import service as campaigns  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.db import create_engine, create_sessionmaker  # noqa: E402
from mailer.pagination import Page, id_cursor, key_cursor  # noqa: E402
from mailer.reputation import service as reputation  # noqa: E402
from tests.fixtures.database import migrate  # noqa: E402

TARGET_MS = 300.0

_SEED = [
    "INSERT INTO templates (name) VALUES ('bench')",
    "INSERT INTO template_versions (template_id, version, subject, html)"
    " VALUES (1, 1, 'Hi', '<p>Hi</p>')",
    "INSERT INTO segments (name, filter) VALUES ('all', '{\"all\": []}')",
    "INSERT INTO campaigns (name, template_id, template_version_id, segment_id, from_address,"
    " status, first_message_id, last_message_id, started_at, finished_at)"
    " VALUES ('bench', 1, 1, 1, 'b@mailer.test', 'completed', 1, :n,"
    " now() - interval '7 hours', now() - interval '1 hour')",
    # recipients: 30 % Gmail, 15 % Outlook, 10 % Yahoo, 7 % iCloud, the rest other domains
    """
    INSERT INTO messages (id, campaign_id, contact_id, email, mail_class, status, region,
                          ses_message_id, sent_at)
    SELECT i, 1, i,
           'r' || i || '@' || CASE WHEN i % 100 < 30 THEN 'gmail.com'
                                   WHEN i % 100 < 38 THEN 'outlook.com'
                                   WHEN i % 100 < 45 THEN 'hotmail.com'
                                   WHEN i % 100 < 55 THEN 'yahoo.com'
                                   WHEN i % 100 < 62 THEN 'icloud.com'
                                   ELSE 'd' || ((i::bigint * 7919) % :domains) || '.example' END,
           'marketing', 'delivered', 'us-east-1', 'bench-' || i,
           now() - interval '7 hours' + make_interval(secs => i * 21600.0 / :n)
      FROM generate_series(1, :n) i
    """,
    "SELECT setval('messages_id_seq', :n)",
    # events: a delivery per message, then opens and clicks until :events in all
    """
    INSERT INTO events (message_id, campaign_id, email, mail_class, region, type,
                        occurred_at, data, dedup_key)
    SELECT id, 1, email, 'marketing', 'us-east-1', 'delivery', sent_at + interval '1 second',
           '{}', 'delivery:' || id FROM messages
    """,
    """
    INSERT INTO events (message_id, campaign_id, email, mail_class, region, type,
                        occurred_at, data, dedup_key)
    SELECT m.id, 1, m.email, 'marketing', 'us-east-1',
           CASE WHEN k % 4 = 3 THEN 'click' ELSE 'open' END,
           m.sent_at + make_interval(secs => 60 + (k * 977) % 7200),
           CASE WHEN k % 4 = 3
                THEN jsonb_build_object('link', 'https://shop.example/l' || ((k / 4) % :links),
                                        'userAgent', 'Mozilla/5.0 (Windows NT 10.0) Chrome/120',
                                        'automated', NULL)
                ELSE jsonb_build_object('userAgent',
                        CASE WHEN m.id % 7 = 0 THEN 'Mozilla/5.0'
                             ELSE 'Mozilla/5.0 (iPhone) AppleWebKit/605.1.15' END,
                        'automated', CASE WHEN m.id % 7 = 0 THEN 'apple_proxy' END) END,
           'e:' || k
      FROM generate_series(1, :engaged) k
      JOIN messages m ON m.id = 1 + (k * 2654435761) % :n
    """,
    """
    INSERT INTO message_engagement (message_id, campaign_id, opens, clicks, human_opens,
                                    human_clicks, first_open_at, first_click_at, links)
    SELECT message_id, 1, count(*) FILTER (WHERE type = 'open'),
           count(*) FILTER (WHERE type = 'click'),
           count(*) FILTER (WHERE type = 'open' AND data->>'automated' IS NULL),
           count(*) FILTER (WHERE type = 'click'),
           min(occurred_at) FILTER (WHERE type = 'open'),
           min(occurred_at) FILTER (WHERE type = 'click'), '{}'
      FROM events WHERE type IN ('open', 'click') GROUP BY message_id
    """,
    """
    UPDATE campaign_stats SET recipients = :n, sent = :n, delivered = :n,
           opened = x.o, clicked = x.c, unique_opened = x.o, unique_clicked = x.c,
           human_opened = x.h, human_clicked = x.c
      FROM (SELECT count(*) FILTER (WHERE opens > 0) AS o, count(*) FILTER (WHERE clicks > 0) AS c,
                   count(*) FILTER (WHERE human_opens + human_clicks > 0) AS h
              FROM message_engagement) x
     WHERE campaign_id = 1
    """,
    """
    INSERT INTO campaign_links (campaign_id, link, clicks, clickers, human_clickers)
    SELECT 1, data->>'link', count(*), count(DISTINCT message_id), count(DISTINCT message_id)
      FROM events WHERE type = 'click' GROUP BY 2
    """,
    """
    INSERT INTO campaign_timeline (campaign_id, bucket, sent, delivered, opens, clicks)
    SELECT 1, date_bin('10 minutes', occurred_at, TIMESTAMPTZ '2000-01-01 00:00Z'),
           count(*) FILTER (WHERE type = 'delivery'), count(*) FILTER (WHERE type = 'delivery'),
           count(*) FILTER (WHERE type = 'open'), count(*) FILTER (WHERE type = 'click')
      FROM events GROUP BY 2
    """,
    """
    INSERT INTO campaign_domains (campaign_id, domain, delivered, opened)
    SELECT 1, split_part(m.email, '@', 2), count(*), count(e.message_id)
      FROM messages m LEFT JOIN message_engagement e ON e.message_id = m.id AND e.opens > 0
     GROUP BY 2
    """,
    """
    INSERT INTO domain_hours (hour, mail_class, domain, delivered, opened)
    SELECT date_trunc('hour', m.sent_at), 'marketing', split_part(m.email, '@', 2), count(*),
           count(e.message_id)
      FROM messages m LEFT JOIN message_engagement e ON e.message_id = m.id AND e.opens > 0
     GROUP BY 1, 3
    """,
    # the other domains' MX as the look-up job leaves it (engagement.mx): a third hosted by
    # Google Workspace, a third by Microsoft 365, the rest their own
    """
    INSERT INTO domain_mx (domain, provider, mx, looked_up_at)
    SELECT 'd' || i || '.example', CASE i % 3 WHEN 0 THEN 'Gmail' WHEN 1 THEN 'Outlook' END,
           'mx.example', now()
      FROM generate_series(0, :domains - 1) i
    """,
    """
    INSERT INTO reputation_minutes (minute, mail_class, region, configuration_set,
                                    campaign_id, sent, delivered)
    SELECT date_trunc('minute', sent_at), 'marketing', 'us-east-1', 'marketing', 1,
           count(*), count(*)
      FROM messages GROUP BY 1
    """,
]


async def seed(settings: Settings, recipients: int, events: int, links: int, domains: int) -> None:
    engine = create_engine(settings)
    params = {
        "n": recipients,
        "engaged": max(events - recipients, 0),
        "links": links,
        "domains": domains,
    }
    async with engine.begin() as conn:
        for statement in _SEED:
            started = time.perf_counter()
            await conn.execute(text(statement), params)
            print(f"  {time.perf_counter() - started:6.1f} s  {' '.join(statement.split())[:70]}")
        await conn.execute(text("INSERT INTO campaign_stats (campaign_id) VALUES (1)"
                                " ON CONFLICT DO NOTHING"))  # fmt: skip
    async with engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("VACUUM ANALYZE"))
        counts = {
            t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar_one()  # noqa: S608
            for t in ("messages", "events", "message_engagement", "campaign_domains",
                      "domain_hours", "campaign_links")
        }  # fmt: skip
    print("seeded:", ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    await engine.dispose()


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, float]:
    await fn()  # warm: prepared statements, caches
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


async def run(settings: Settings, repeat: int) -> dict[str, tuple[float, float]]:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    key: Page[str] = Page(None, 100, key_cursor)
    ids: Page[int] = Page(None, 100, id_cursor)

    def on_session(call: Callable[[Any], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def go() -> None:
            async with sessionmaker() as session:
                await call(session)

        return go

    async def export_first() -> None:
        async with sessionmaker() as session:
            span = await reports.export_span(session, 1)
        stream = reports.recipients_csv(engine, 1, span)
        await anext(stream)
        await anext(stream)
        await stream.aclose()

    cases: dict[str, Callable[[], Awaitable[Any]]] = {
        "GET /v1/campaigns/{id} (stats)": on_session(lambda s: campaigns.get(s, 1)),
        "GET …/links (first page)": on_session(lambda s: reports.links(s, 1, key)),
        "GET …/providers (first page)": on_session(lambda s: reports.providers(s, 1, key)),
        "GET …/timeline (first page)": on_session(lambda s: reports.timeline(s, 1, ids)),
        "GET /v1/reputation (with providers)": on_session(lambda s: reputation.report(s, settings)),
        "GET …/recipients.csv (first 5,000 rows)": export_first,
    }
    out = {name: await timed(call, repeat) for name, call in cases.items()}

    started = time.perf_counter()
    async with sessionmaker() as session:
        span = await reports.export_span(session, 1)
    size = 0
    async for chunk in reports.recipients_csv(engine, 1, span):
        size += len(chunk)
    whole = (time.perf_counter() - started) * 1000
    print(f"recipients.csv whole: {whole / 1000:.1f} s, {size / 1e6:.0f} MB")
    await engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipients", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=3_000_000)
    parser.add_argument("--links", type=int, default=20)
    parser.add_argument("--domains", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--skip-seed", action="store_true", help="reuse the seeded database")
    parser.add_argument(
        "--database-url",
        default="postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_engagement",
    )
    args = parser.parse_args()
    settings = Settings(database_url=args.database_url)
    if not args.skip_seed:
        migrate(args.database_url)
        asyncio.run(seed(settings, args.recipients, args.events, args.links, args.domains))
    results = asyncio.run(run(settings, args.repeat))
    worst = 0.0
    for name, (median, top) in results.items():
        worst = max(worst, median)
        print(f"{name:42} median {median:7.1f} ms  max {top:7.1f} ms")
    verdict = "PASS" if worst <= TARGET_MS else "FAIL"
    print(
        f"slowest report median {worst:.1f} ms; target ≤ {TARGET_MS:.0f} ms: {verdict}"
        f" (ratio {worst / TARGET_MS:.2f})"
    )


if __name__ == "__main__":
    main()
