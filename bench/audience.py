"""Benchmark: fixing the audience of a 1,000,000-contact segment (target ≤ 10 s).

Generates the contacts on the fly (set-based SQL), then times the campaign launch's
audience fix-up: the INSERT … SELECTs (one per contact id range, on
``--connections`` connections at once, as the start job does) that write a message per
eligible contact, and the campaign's commit.

    python bench/audience.py [--contacts 1000000] [--connections 2] [--database-url postgresql+asyncpg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from mailer.campaign import audience_fixup  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.db import create_engine, create_sessionmaker, transaction  # noqa: E402
from tests.fixtures.database import ensure_database, migrate  # noqa: E402

TARGET_SECONDS = 10.0


async def seed(settings: Settings, contacts: int) -> int:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    started = time.perf_counter()
    async with engine.connect() as conn:
        have = (await conn.execute(text("SELECT count(*) FROM contacts"))).scalar_one()
    if have == contacts:
        # seeded by an earlier run: only reset the campaign
        async with transaction(sessionmaker) as session:
            await session.execute(text("DELETE FROM messages"))
            await session.execute(
                text(
                    "UPDATE campaigns SET audience_fixed_at = NULL, "
                    "first_message_id = NULL, last_message_id = NULL"
                )
            )
        async with engine.connect() as conn:
            await conn.execute(text("COMMIT"))
            await conn.execute(text("VACUUM ANALYZE messages"))
        await engine.dispose()
        return 1
    async with transaction(sessionmaker) as session:
        await session.execute(
            text(
                """
            INSERT INTO contacts (email, attributes, tags)
            SELECT 'user' || g || '@bench.test',
                   jsonb_build_object('first_name', 'Name' || g, 'n', g),
                   ARRAY['bench']
              FROM generate_series(1, :n) g
            """
            ),
            {"n": contacts},
        )
        # a sliver of the audience is left out, as in real lists
        await session.execute(
            text("UPDATE contacts SET status = 'unsubscribed' WHERE id % 200 = 0")
        )
        await session.execute(
            text(
                "INSERT INTO suppressions (email, reason, scope, source) "
                "SELECT email, 'bounce', 'all', 'bench' FROM contacts WHERE id % 250 = 1"
            )
        )
        await session.execute(text("INSERT INTO templates (name) VALUES ('bench') RETURNING id"))
        await session.execute(
            text(
                "INSERT INTO template_versions (template_id, version, subject, html) "
                "VALUES (1, 1, 'Hi {{ contact.email }}', '<p>Hi</p>')"
            )
        )
        await session.execute(
            text("INSERT INTO segments (name, filter) VALUES ('all', '{\"all\": []}')")
        )
        await session.execute(
            text(
                "INSERT INTO campaigns (name, template_id, template_version_id, segment_id, "
                "from_address, status) VALUES ('bench', 1, 1, 1, 'bench@mailer.test', 'sending')"
            )
        )
        await session.execute(text("INSERT INTO campaign_stats (campaign_id) VALUES (1)"))
    async with engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("VACUUM ANALYZE contacts"))
    print(f"seeded {contacts:,} contacts in {time.perf_counter() - started:.1f} s")
    await engine.dispose()
    return 1


async def fix_up(settings: Settings, campaign_id: int) -> tuple[float, int]:
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    started = time.perf_counter()
    async with transaction(sessionmaker) as session:
        campaign = await audience_fixup.fix_audience(
            session,
            campaign_id,
            connections=settings.audience_fixup_connections,
            part_min=settings.audience_fixup_part_min,
        )
        assert campaign is not None and campaign.audience_fixed_at is not None
    elapsed = time.perf_counter() - started
    async with engine.connect() as conn:
        recipients = (
            await conn.execute(
                text("SELECT recipients FROM campaign_stats WHERE campaign_id = :id"),
                {"id": campaign_id},
            )
        ).scalar_one()
    await engine.dispose()
    return elapsed, int(recipients)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=Settings().audience_fixup_connections,
        help="connections inserting at once (MAILER_AUDIENCE_FIXUP_CONNECTIONS)",
    )
    parser.add_argument(
        "--reuse", dest="fresh", action="store_false", help="keep the contacts of an earlier run"
    )
    args = parser.parse_args()
    settings = Settings(database_url=args.database_url, audience_fixup_connections=args.connections)
    asyncio.run(ensure_database(args.database_url))
    if args.fresh:
        migrate(args.database_url)
    campaign_id = asyncio.run(seed(settings, args.contacts))
    elapsed, recipients = asyncio.run(fix_up(settings, campaign_id))
    print(
        f"audience fix-up: {recipients:,} recipients of {args.contacts:,} contacts "
        f"in {elapsed:.2f} s ({recipients / elapsed:,.0f} rows/s, "
        f"{args.connections} connection(s))"
    )
    print(
        f"target ≤ {TARGET_SECONDS:.0f} s: {'PASS' if elapsed <= TARGET_SECONDS else 'FAIL'} "
        f"(ratio {elapsed / TARGET_SECONDS:.2f} of the budget)"
    )


if __name__ == "__main__":
    main()
