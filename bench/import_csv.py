"""Benchmark: importing a 1,000,000-row CSV file (target ≤ 10 s, API RSS ≤ 120 MB).

Writes the file to a temporary file (email, first_name, city, tags), starts the API as its
own process (``mailer api``, uvicorn), streams the file to ``POST /v1/contacts/imports``
over HTTP in 64 KB pieces while sampling that process's RSS every 20 ms, then runs the
import job function (what an arq worker runs) in this process and times it. The figures
judged: upload + import ≤ 10 s, the API process's peak RSS during the upload ≤ 120 MB.

    python bench/import_csv.py [--rows 1000000] [--database-url postgresql+asyncpg://…]
        [--redis-url redis://…/N] [--port 8411] [--again]

The contacts table is emptied first (the database is migrated to head; use a scratch one).
``--again`` imports the same file a second time (all rows then count as updates).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psutil  # noqa: E402
from sqlalchemy import text  # noqa: E402

from mailer.auth.service import create_key  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.contact import import_merge  # noqa: E402
from mailer.db import create_engine, create_sessionmaker, transaction  # noqa: E402
from mailer.secrets import new_key  # noqa: E402
from tests.fixtures.database import ensure_database  # noqa: E402

TARGET_SECONDS = 10.0
TARGET_RSS_MB = 120.0
CITIES = ["Berlin", "Paris", "Lisbon", "Oslo", "Madrid", "Rome", "Vienna", "Prague"]


def write_csv(path: Path, rows: int) -> int:
    with path.open("w") as f:
        f.write("email,first_name,city,tags\n")
        for start in range(0, rows, 10_000):
            f.write(
                "".join(
                    f"User{i}@Example{i % 997}.com,Name{i},{CITIES[i % len(CITIES)]},"
                    f"{'news;weekly' if i % 3 else 'news'}\n"
                    for i in range(start, min(rows, start + 10_000))
                )
            )
    return path.stat().st_size


async def file_pieces(path: Path, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    with path.open("rb") as f:
        while piece := f.read(size):
            yield piece


class RssSampler:
    """Peak RSS of a process, sampled every 20 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def start_api(settings: Settings, port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MAILER_DATABASE_URL": settings.database_url,
        "MAILER_REDIS_URL": settings.redis_url,
        "MAILER_SECRET_KEY": new_key(),
        "PYTHONPATH": str(ROOT),
        "MAILER_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-c", "from mailer.cli import main; main()", "api", "--port", str(port)],
        env=env,
        cwd=ROOT,
    )


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def database_cpu(name: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving database ``name`` (their
    process titles name it; backends that exited are not counted, so sample while the
    connections are open)."""
    total = 0.0
    for process in psutil.process_iter(["name", "cmdline"]):
        try:
            title = " ".join(process.info["cmdline"] or [])
            if title.startswith("postgres:") and f" {name} " in f"{title} ":
                total += cpu_seconds(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total


async def wait_up(base: str) -> None:
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(300):
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("the API did not come up")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_import"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--port", type=int, default=8411)
    parser.add_argument("--again", action="store_true", help="import the file a second time")
    args = parser.parse_args()

    await ensure_database(args.database_url)
    from alembic import command

    from mailer.migrate import alembic_config

    await asyncio.to_thread(command.upgrade, alembic_config(args.database_url), "head")
    settings = Settings(database_url=args.database_url, redis_url=args.redis_url)
    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as session:
        await session.execute(
            text("TRUNCATE contacts, contact_imports, contact_import_rows RESTART IDENTITY CASCADE")
        )
        _, key = await create_key(session, "bench", ["campaigns"])
    async with engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("VACUUM ANALYZE contacts"))

    tmp = Path(tempfile.mkdtemp(prefix="bench-import-"))
    csv_path = tmp / "contacts.csv"
    started = time.perf_counter()
    size = write_csv(csv_path, args.rows)
    print(f"wrote {args.rows:,} rows, {size / 1e6:.1f} MB in {time.perf_counter() - started:.1f} s")

    api = start_api(settings, args.port)
    base = f"http://127.0.0.1:{args.port}"
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
    try:
        await wait_up(base)
        idle = psutil.Process(api.pid).memory_info().rss / 1e6
        async with httpx.AsyncClient(base_url=base, timeout=600) as client:
            database = args.database_url.rsplit("/", 1)[-1].split("?")[0]
            api_process = psutil.Process(api.pid)
            for run in range(2 if args.again else 1):
                cpu0 = (cpu_seconds(api_process), database_cpu(database))
                t0 = time.perf_counter()
                with RssSampler(api.pid) as rss:
                    r = await client.post(
                        "/v1/contacts/imports", content=file_pieces(csv_path), headers=headers
                    )
                assert r.status_code == 202, r.text
                import_id = r.json()["id"]
                t1 = time.perf_counter()
                cpu1 = (cpu_seconds(api_process), database_cpu(database))
                job0 = cpu_seconds(psutil.Process())
                # the job's pooled connections stay open until the engine is disposed
                status = await import_merge.run_import(sessionmaker, import_id)
                t2 = time.perf_counter()
                cpu2 = (cpu_seconds(psutil.Process()), database_cpu(database))
                report = (
                    await client.get(f"/v1/contacts/imports/{import_id}", headers=headers)
                ).json()
                total = t2 - t0
                peak = rss.peak / 1e6
                print(
                    f"run {run + 1}: {status}; upload (streamed, staged) {t1 - t0:.1f} s,"
                    f" merge job {t2 - t1:.1f} s, total {total:.1f} s;"
                    f" {args.rows / total:,.0f} rows/s"
                )
                print(
                    f"  created {report['created']:,} updated {report['updated']:,}"
                    f" rejected {report['rejected']:,} of {report['total_rows']:,}"
                )
                print(f"  API process RSS: {idle:.0f} MB idle, {peak:.0f} MB peak during upload")
                us = 1e6 / args.rows
                print(
                    f"  CPU a row: upload: API {(cpu1[0] - cpu0[0]) * us:.1f} us,"
                    f" PostgreSQL {(cpu1[1] - cpu0[1]) * us:.1f} us;"
                    f" merge: job {(cpu2[0] - job0) * us:.1f} us,"
                    f" PostgreSQL {(cpu2[1] - cpu1[1]) * us:.1f} us"
                    " (PostgreSQL: the backends open at the end of each phase)"
                )
                note = "" if args.rows == 1_000_000 else f" (for {args.rows:,} rows)"
                print(
                    f"  ratios: time {TARGET_SECONDS:.0f} s / measured ="
                    f" {TARGET_SECONDS / total:.2f}; RSS {TARGET_RSS_MB:.0f} MB / peak ="
                    f" {TARGET_RSS_MB / peak:.2f}{note}"
                )
    finally:
        api.terminate()
        api.wait(10)
        csv_path.unlink()
        tmp.rmdir()  # noqa: ASYNC240 - a bench, nothing else waits on the loop
        await engine.dispose()
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    asyncio.run(main())
