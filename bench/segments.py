"""Benchmark: segment count and preview over 1,000,000 contacts (target ≤ 500 ms each).

Seeds the contacts once (set-based SQL; reused while the count matches): tags ``news`` on
60 %, ``vip`` on 5 %; attributes ``city`` (8 values), ``plan`` and ``n``; 2 % unsubscribed,
1 % suppressed. Then times, through the HTTP API in this process (httpx over ASGI, real
PostgreSQL), ``GET /v1/segments/{id}/count`` and ``POST /v1/segments/preview`` for a tag
filter, an attribute filter, a nested filter and an email-domain filter: best and median
of ``--repeat`` runs, after one warm-up.

    python bench/segments.py [--contacts 1000000] [--repeat 5] [--database-url …]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import text  # noqa: E402

from mailer.app import create_app  # noqa: E402
from mailer.auth.service import create_key  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.db import create_engine, create_sessionmaker, transaction  # noqa: E402
from mailer.secrets import new_key  # noqa: E402
from tests.fixtures.database import ensure_database  # noqa: E402

TARGET_MS = 500.0
CITIES = ["Berlin", "Paris", "Lisbon", "Oslo", "Madrid", "Rome", "Vienna", "Prague"]

FILTERS: dict[str, dict[str, Any]] = {
    "tag (vip, 5 %)": {"field": "tags", "op": "contains", "value": "vip"},
    "tag (news, 60 %)": {"field": "tags", "op": "contains", "value": "news"},
    "attribute (city = Paris)": {"field": "attributes.city", "op": "eq", "value": "Paris"},
    "nested": {
        "all": [
            {"field": "tags", "op": "contains", "value": "news"},
            {
                "any": [
                    {"field": "attributes.plan", "op": "eq", "value": "pro"},
                    {"field": "attributes.n", "op": "gte", "value": 900_000},
                ]
            },
            {"not": {"field": "email", "op": "ends_with", "value": "@example3.com"}},
        ]
    },
    "email domain": {"field": "email", "op": "ends_with", "value": "@example7.com"},
}

_SEED = """
INSERT INTO contacts (email, attributes, tags, status)
SELECT 'user' || g || '@example' || (g % 10) || '.com',
       jsonb_build_object('city', (ARRAY['Berlin','Paris','Lisbon','Oslo','Madrid','Rome',
                                         'Vienna','Prague'])[1 + g % 8],
                          'plan', CASE WHEN g % 7 = 0 THEN 'pro' ELSE 'free' END, 'n', g),
       CASE WHEN g % 20 = 0 THEN ARRAY['news', 'vip'] WHEN g % 5 < 3 THEN ARRAY['news']
            ELSE ARRAY[]::text[] END,
       CASE WHEN g % 50 = 1 THEN 'unsubscribed' ELSE 'subscribed' END
  FROM generate_series(1, :n) g
"""


async def seed(sessionmaker: Any, engine: Any, contacts: int) -> None:
    async with engine.connect() as conn:
        have = (await conn.execute(text("SELECT count(*) FROM contacts"))).scalar_one()
    if have != contacts:
        started = time.perf_counter()
        async with transaction(sessionmaker) as session:
            await session.execute(text("TRUNCATE contacts, suppressions CASCADE"))
            await session.execute(text(_SEED), {"n": contacts})
            await session.execute(
                text(
                    "INSERT INTO suppressions (email, reason) SELECT email, 'bench' FROM contacts"
                    " WHERE id % 100 = 7"
                )
            )
        print(f"seeded {contacts:,} contacts in {time.perf_counter() - started:.1f} s")
    async with engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("VACUUM ANALYZE contacts"))
        await conn.execute(text("VACUUM ANALYZE suppressions"))


async def timed(call: Any, repeat: int) -> tuple[float, float, Any]:
    await call()  # warm-up
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = await call()
        times.append((time.perf_counter() - t0) * 1000)
    return min(times), statistics.median(times), result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_segments"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()

    await ensure_database(args.database_url)
    from alembic import command

    from mailer.migrate import alembic_config

    await asyncio.to_thread(command.upgrade, alembic_config(args.database_url), "head")
    settings = Settings(database_url=args.database_url, redis_url=args.redis_url)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    await seed(sessionmaker, engine, args.contacts)
    async with transaction(sessionmaker) as session:
        _, key = await create_key(session, "bench", ["campaigns"])
    headers = {"Authorization": f"Bearer {key}"}

    app = create_app(settings.model_copy(update={"secret_key": new_key()}))
    worst = 0.0
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://bench", timeout=60
        ) as client:
            for label, tree in FILTERS.items():
                r = await client.post(
                    "/v1/segments", headers=headers, json={"name": label, "filter": tree}
                )
                assert r.status_code == 201, r.text
                segment_id = r.json()["id"]

                async def count(segment_id: int = segment_id) -> Any:
                    r = await client.get(f"/v1/segments/{segment_id}/count", headers=headers)
                    assert r.status_code == 200, r.text
                    return r.json()

                async def preview(tree: dict[str, Any] = tree) -> Any:
                    r = await client.post(
                        "/v1/segments/preview", headers=headers, json={"filter": tree}
                    )
                    assert r.status_code == 200, r.text
                    return r.json()

                c_best, c_median, c = await timed(count, args.repeat)
                p_best, p_median, _ = await timed(preview, args.repeat)
                worst = max(worst, c_median, p_median)
                print(
                    f"{label:26} matching {c['matching']:>9,} eligible {c['eligible']:>9,}"
                    f" | count {c_best:6.0f} ms best {c_median:6.0f} median"
                    f" | preview {p_best:6.0f} ms best {p_median:6.0f} median"
                )
    note = "" if args.contacts == 1_000_000 else f" (for {args.contacts:,} contacts)"
    print(
        f"slowest median {worst:.0f} ms; ratio {TARGET_MS:.0f} ms / slowest ="
        f" {TARGET_MS / worst:.2f}{note}; load average {os.getloadavg()}"
    )
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
