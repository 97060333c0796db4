"""Benchmark: importing a 1,000,000-row CSV file (target ≤ 60 s).

Generates the file in memory (email, first_name, city, tags), POSTs it to the API running
in this process (httpx over ASGI, real PostgreSQL and Redis), then runs the import job
function in this process (what an arq worker runs) and times it. The figure judged is
upload + import; the ratio is 60 s over it (≥ 1 meets the target).

    python bench/import_csv.py [--rows 1000000] [--database-url postgresql+asyncpg://…]
        [--redis-url redis://…/N] [--again]

The contacts table is emptied first (the database is migrated to head; use a scratch one).
``--again`` imports the same file a second time (all rows then count as updates).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import text  # noqa: E402

from mailer.app import create_app  # noqa: E402
from mailer.auth.service import create_key  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.contact import service  # noqa: E402
from mailer.db import create_engine, create_sessionmaker, transaction  # noqa: E402
from tests.fixtures.database import ensure_database  # noqa: E402

TARGET_SECONDS = 60.0
CITIES = ["Berlin", "Paris", "Lisbon", "Oslo", "Madrid", "Rome", "Vienna", "Prague"]


def generate_csv(rows: int) -> bytes:
    lines = ["email,first_name,city,tags"]
    for i in range(rows):
        tags = "news;weekly" if i % 3 else "news"
        lines.append(f"User{i}@Example{i % 997}.com,Name{i},{CITIES[i % len(CITIES)]},{tags}")
    return ("\n".join(lines) + "\n").encode()


async def run_job(database_url: str, import_id: int) -> None:
    """The child of --job-process: the job alone, as a worker runs it; prints its peak RSS."""
    me = psutil.Process()
    peak = 0

    async def sample() -> None:
        # sampled, not ru_maxrss: that one starts from the parent's size at fork
        nonlocal peak
        while True:
            peak = max(peak, me.memory_info().rss)
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    engine = create_engine(Settings(database_url=database_url))
    start_rss = me.memory_info().rss
    status = await service.run_import(create_sessionmaker(engine), import_id)
    await engine.dispose()
    sampler.cancel()
    print(f"{status} {start_rss / 1e6:.0f} {peak / 1e6:.0f}")


async def job_in_child(database_url: str, import_id: int) -> str:
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--run-job", str(import_id), "--database-url", database_url,
        stdout=asyncio.subprocess.PIPE)
    out, _ = await child.communicate()
    status, start, peak = out.decode().split()[-3:]
    print(f"  job process: RSS {start} MB before the job, {peak} MB peak"
          " (its Python start-up is included in the import time)")
    return status


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url",
                        default="postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_import")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--again", action="store_true", help="import the file a second time")
    parser.add_argument("--job-process", action="store_true",
                        help="run the job in a child process and report its peak RSS")
    parser.add_argument("--run-job", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_job is not None:
        await run_job(args.database_url, args.run_job)
        return

    await ensure_database(args.database_url)
    from alembic import command

    from mailer.migrate import alembic_config

    await asyncio.to_thread(command.upgrade, alembic_config(args.database_url), "head")
    settings = Settings(database_url=args.database_url, redis_url=args.redis_url)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as session:
        await session.execute(text("TRUNCATE contacts, contact_imports RESTART IDENTITY"))
        _, key = await create_key(session, "bench", ["campaigns"])

    started = time.perf_counter()
    body = generate_csv(args.rows)
    print(f"generated {args.rows:,} rows, {len(body) / 1e6:.1f} MB "
          f"in {time.perf_counter() - started:.1f} s")

    app = create_app(settings)
    proc = psutil.Process(os.getpid())
    runs = 2 if args.again else 1
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for run in range(runs):
                t0 = time.perf_counter()
                r = await client.post("/v1/contacts/imports", content=body, timeout=600,
                                      headers={"Authorization": f"Bearer {key}",
                                               "Content-Type": "text/csv"})
                assert r.status_code == 202, r.text
                import_id = r.json()["id"]
                t1 = time.perf_counter()
                if args.job_process:
                    status = await job_in_child(args.database_url, import_id)
                else:
                    status = await service.run_import(sessionmaker, import_id)
                t2 = time.perf_counter()
                r = await client.get(f"/v1/contacts/imports/{import_id}",
                                     headers={"Authorization": f"Bearer {key}"})
                report = r.json()
                total = t2 - t0
                print(f"run {run + 1}: {status}; upload {t1 - t0:.1f} s, import {t2 - t1:.1f} s,"
                      f" total {total:.1f} s; {args.rows / total:,.0f} rows/s")
                print(f"  created {report['created']:,} updated {report['updated']:,}"
                      f" rejected {report['rejected']:,} of {report['total_rows']:,}")
                print(f"  ratio (target {TARGET_SECONDS:.0f} s / measured): "
                      f"{TARGET_SECONDS / total:.2f}"
                      f"{'' if args.rows == 1_000_000 else f' (for {args.rows:,} rows)'}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(f"RSS of this process (file generator + API + job): {proc.memory_info().rss / 1e6:.0f}"
          f" MB now, {peak:.0f} MB peak; load average {os.getloadavg()}")
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
