"""Benchmark: reputation reads and the auto-pause check over a week of rollups.

Seeds ``reputation_minutes`` with a week of per-minute buckets (set-based SQL) for
``--campaigns`` sending marketing campaigns in ``--regions`` regions plus transactional
mail, then times what runs per request or per event batch: GET /v1/reputation's report,
the auto-pause check after a bounce (one campaign and its class) and the dashboard's
series. Targets: the check ≤ 20 ms (it runs in every events batch with a bounce or a
complaint), the report ≤ 500 ms.

    python bench/reputation.py [--campaigns 20] [--regions 2] [--days 7] [--repeat 20]
                               [--database-url postgresql+asyncpg://…/mailer_bench_reputation]
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

from mailer.config import Settings  # noqa: E402
from mailer.db import create_engine, create_sessionmaker, transaction  # noqa: E402
from mailer.reputation import repository, service  # noqa: E402
from tests.fixtures.database import ensure_database, migrate  # noqa: E402

CHECK_TARGET_MS = 20.0
REPORT_TARGET_MS = 500.0


async def seed(settings: Settings, campaigns: int, regions: int, days: int) -> int:
    engine = create_engine(settings)
    started = time.perf_counter()
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO templates (name) VALUES ('bench')"))
        await conn.execute(
            text(
                "INSERT INTO template_versions (template_id, version, subject, html)"
                " VALUES (1, 1, 'Hi', '<p>Hi</p>')"
            )
        )
        await conn.execute(
            text("INSERT INTO segments (name, filter) VALUES ('all', '{\"all\": []}')")
        )
        await conn.execute(
            text(
                "INSERT INTO campaigns (name, template_id, template_version_id, segment_id,"
                " from_address, status) SELECT 'bench ' || g, 1, 1, 1, 'b@mailer.test', 'sending'"
                " FROM generate_series(1, :n) g"
            ),
            {"n": campaigns},
        )
        await conn.execute(
            text("INSERT INTO campaign_stats (campaign_id) SELECT id FROM campaigns")
        )
        # every minute of the week, every region: each campaign and the transactional mail
        await conn.execute(
            text(
                """
            INSERT INTO reputation_minutes (minute, mail_class, region, configuration_set,
                                            campaign_id, sent, delivered, hard_bounces,
                                            soft_bounces, complaints)
            SELECT m, CASE WHEN c = 0 THEN 'transactional' ELSE 'marketing' END,
                   'region-' || r, CASE WHEN c = 0 THEN 'transactional' ELSE 'marketing' END,
                   c, 30, 29, (c + r) % 2, 0, 0
              FROM generate_series(date_trunc('minute', now()) - make_interval(days => :days),
                                   date_trunc('minute', now()), interval '1 minute') m,
                   generate_series(1, :regions) r, generate_series(0, :campaigns) c
            """
            ),
            {"days": days, "regions": regions, "campaigns": campaigns},
        )
        rows = (await conn.execute(text("SELECT count(*) FROM reputation_minutes"))).scalar_one()
    print(f"seeded {rows:,} minute rows in {time.perf_counter() - started:.1f} s")
    # what the send workers' compactor keeps it at: minutes for two hours, hours before
    started = time.perf_counter()
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as db:
        await repository.compact(db)
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT count(*) FROM reputation_minutes"))).scalar_one()
        await conn.execute(text("COMMIT"))
        await conn.execute(text("VACUUM ANALYZE reputation_minutes"))
    print(f"compacted to {rows:,} rows in {time.perf_counter() - started:.1f} s")
    await engine.dispose()
    return int(rows)


async def timed(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    await fn()  # warm: prepared statements, caches
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def run(settings: Settings, repeat: int) -> tuple[float, float, float]:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)

    async def report() -> None:
        async with sessionmaker() as db:
            await service.report(db, settings)

    async def check() -> None:
        # what a bounce of campaign 1 costs the events batch (nothing is over: no pause)
        async with transaction(sessionmaker) as db:
            assert await service.check(db, settings, {("marketing", 1)}) == []

    async def series() -> None:
        async with sessionmaker() as db:
            await repository.series(db, None, 3600, 60)
            for mail_class in ("marketing", "transactional"):
                await repository.series(db, mail_class, 86400, 1800)

    out = (await timed(check, repeat), await timed(report, repeat), await timed(series, repeat))
    await engine.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument("--regions", type=int, default=2)
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_reputation"
    )
    args = parser.parse_args()
    settings = Settings(
        database_url=args.database_url,
        regions=",".join(f"region-{r}" for r in range(1, args.regions + 1)),
    )
    asyncio.run(ensure_database(args.database_url))
    migrate(args.database_url)
    rows = asyncio.run(seed(settings, args.campaigns, args.regions, args.days))
    check_ms, report_ms, series_ms = asyncio.run(run(settings, args.repeat))
    print(
        f"rollup rows: {rows:,} ({args.days} d × {args.regions} regions × "
        f"{args.campaigns + 1} campaigns/transactional, compacted)"
    )
    print(
        f"auto-pause check after a bounce (campaign + class): {check_ms:.1f} ms median; "
        f"target ≤ {CHECK_TARGET_MS:.0f} ms: "
        f"{'PASS' if check_ms <= CHECK_TARGET_MS else 'FAIL'} "
        f"(ratio {check_ms / CHECK_TARGET_MS:.2f})"
    )
    print(
        f"GET /v1/reputation report: {report_ms:.1f} ms median; target ≤ "
        f"{REPORT_TARGET_MS:.0f} ms: {'PASS' if report_ms <= REPORT_TARGET_MS else 'FAIL'} "
        f"(ratio {report_ms / REPORT_TARGET_MS:.2f})"
    )
    print(
        f"dashboard series (1 h per minute, 24 h per 30 min × 2 classes): {series_ms:.1f} ms median"
    )


if __name__ == "__main__":
    main()
