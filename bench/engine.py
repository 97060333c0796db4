"""Driving the real campaign engine for benchmarks: a database, campaigns, worker processes."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parents[1]

from mailer.config import Settings  # noqa: E402
from mailer.secrets import new_key  # noqa: E402
from tests.fixtures.database import migrate  # noqa: E402
from tests.fixtures.workers import WorkerProcess, worker_env  # noqa: E402

DATABASE_URL = os.environ.get(
    "MAILER_BENCH_DATABASE_URL", "postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_send"
)
REDIS_URL = os.environ.get("MAILER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")

# a campaign-sized body, about the bare loop's 4 KB, rendered through the default layout
HTML = (
    '{% extends "layouts/default.html" %}{% block content %}'
    "<table role='presentation' width='100%'><tr><td>"
    "Hello {{ contact.attributes.first_name | default('Reader') }}, here is this week's news. "
    + "Our long-running story continues with more words in it. " * 60
    + "</td></tr></table>{% endblock %}"
)


async def _execute(url: str, *statements: str, autocommit: bool = False) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT" if autocommit else None)
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))
    await engine.dispose()


async def _scalar(url: str, statement: str) -> object:
    engine = create_async_engine(url)
    async with engine.connect() as conn:
        value = (await conn.execute(text(statement))).scalar()
    await engine.dispose()
    return value


def prepare_database(url: str = DATABASE_URL) -> None:
    """Create the bench database if missing and migrate it from scratch."""
    migrate(url)


def seed_campaign(recipients: int, url: str = DATABASE_URL) -> int:
    """Empty the database, add ``recipients`` contacts and a draft campaign to all of them."""
    from mailer.models import Base

    tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
    html = HTML.replace("'", "''")
    asyncio.run(
        _execute(
            url,
            f"TRUNCATE {tables} RESTART IDENTITY CASCADE",
            f"""INSERT INTO contacts (email, attributes, tags)
            SELECT 'reader' || g || '@bench.test', jsonb_build_object('first_name', 'R' || g),
                   ARRAY['bench'] FROM generate_series(1, {int(recipients)}) g""",
            "INSERT INTO templates (name) VALUES ('bench')",
            "INSERT INTO template_versions (template_id, version, subject, html) VALUES "
            f"(1, 1, 'Weekly news for {{{{ contact.attributes.first_name }}}}', '{html}')",
            """INSERT INTO segments (name, filter) VALUES ('all', '{"all": []}')""",
            "INSERT INTO campaigns (name, template_id, template_version_id, segment_id, "
            "from_address, status) VALUES ('bench', 1, 1, 1, 'news@bench.test', 'draft')",
            "INSERT INTO campaign_stats (campaign_id) VALUES (1)",
        )
    )
    asyncio.run(_execute(url, "VACUUM ANALYZE contacts", autocommit=True))
    return 1


def launch(campaign_id: int, url: str = DATABASE_URL, redis_url: str = REDIS_URL) -> None:
    """What POST /v1/campaigns/{id}/send does: status sending, then the start job."""
    from arq import create_pool
    from arq.connections import RedisSettings

    from mailer.campaign.dispatch import enqueue_start

    asyncio.run(
        _execute(
            url,
            f"UPDATE campaigns SET status = 'sending', started_at = now() WHERE id = {campaign_id}",
        )
    )

    async def enqueue() -> None:
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        await enqueue_start(pool, campaign_id)
        await pool.aclose()

    asyncio.run(enqueue())


def flush_redis(redis_url: str = REDIS_URL) -> None:
    from redis import Redis

    Redis.from_url(redis_url).flushdb()


def campaign_status(campaign_id: int, url: str = DATABASE_URL) -> str:
    return str(asyncio.run(_scalar(url, f"SELECT status FROM campaigns WHERE id = {campaign_id}")))


def stats(campaign_id: int, url: str = DATABASE_URL) -> dict[str, int]:
    async def read() -> dict[str, int]:
        engine = create_async_engine(url)
        async with engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        text(f"SELECT * FROM campaign_stats WHERE campaign_id = {campaign_id}")
                    )
                )
                .mappings()
                .one()
            )
        await engine.dispose()
        return {k: int(v) for k, v in row.items()}

    return asyncio.run(read())


@dataclass
class Workers:
    processes: list[WorkerProcess]

    def stop(self) -> None:
        for worker in self.processes:
            worker.stop()

    def pids(self) -> list[int]:
        return [w.process.pid for w in self.processes]


def start_workers(
    count: int,
    ses_url: str,
    regions: str,
    concurrency: int,
    log_dir: Path,
    url: str = DATABASE_URL,
    redis_url: str = REDIS_URL,
) -> Workers:
    settings = Settings(
        database_url=url,
        redis_url=redis_url,
        regions=regions,
        public_url="https://mail.bench.test",
        secret_key=new_key(),
    )
    env = worker_env(
        settings,
        ses_url,
        MAILER_SEND_CONCURRENCY=str(concurrency),
        MAILER_RECONCILE_INTERVAL_SECONDS="5",
        MAILER_LEASE_SECONDS="30",
        MAILER_LOG_LEVEL="WARNING",
    )
    log_dir.mkdir(parents=True, exist_ok=True)
    return Workers([WorkerProcess(env, log_dir / f"worker-{i}.log") for i in range(count)])


def wait_for_completion(campaign_id: int, timeout: float, on_tick=None) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    status = ""
    while time.monotonic() < deadline:
        status = campaign_status(campaign_id)
        if status in ("completed", "failed", "cancelled"):
            return status
        if on_tick is not None:
            on_tick()
        time.sleep(0.5)
    return status


def rss_mb(pid: int) -> float:
    process = psutil.Process(pid)
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += child.memory_info().rss
    return total / 1e6


__all__ = ["ROOT", "subprocess", "sys"]
