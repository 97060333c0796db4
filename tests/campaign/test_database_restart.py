"""PostgreSQL restarted under a sending campaign (as in a failover): nothing lost, nothing
failed, re-sends counted.

The test breaks its database, so it runs a PRIVATE PostgreSQL (the embedded one of
``mailer dev``, on a free port), never the shared one.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from mailer.config import Settings
from mailer.db import create_engine, create_sessionmaker, transaction
from mailer.local.databases import start_postgres
from tests import factories
from tests.campaign.conftest import recipients, seed_contacts, wait_sent
from tests.fixtures.api import free_port
from tests.fixtures.database import migrate
from tests.fixtures.workers import WorkerProcess, worker_env


class PrivatePostgres:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.service = start_postgres(base, port=self.port, database="mailer")
        self.url = self.service.url

    def restart(self, down_for: float) -> None:
        """Fast shutdown (every connection is cut), ``down_for`` seconds away, start."""
        self.service.stop()
        time.sleep(down_for)
        self.service = start_postgres(self.base, port=self.port, database="mailer")

    def stop(self) -> None:
        self.service.stop()


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    # a directory of its own under /tmp (PostgreSQL runs as an unprivileged user when the
    # tests run as root, and pytest's tmp_path is not a place it can own files in)
    base = Path(tempfile.mkdtemp(prefix="mailer-test-pg-"))
    pg = PrivatePostgres(base / "pg")
    try:
        migrate(pg.url)
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def private_settings(settings: Settings, private_pg: PrivatePostgres) -> Settings:
    return settings.model_copy(update={"database_url": private_pg.url})


async def test_postgres_restart_mid_campaign_loses_nothing_and_counts_resends(
    private_pg: PrivatePostgres,
    private_settings: Settings,
    redis: Redis,
    clean_standin,
    tmp_path: Path,
) -> None:
    from mailer.app import create_app
    from mailer.auth.service import create_key

    await redis.flushdb()
    control = clean_standin.control
    control.set_latency(20)
    engine = create_engine(private_settings, pool_size=2)
    app = create_app(private_settings)
    workers: list[WorkerProcess] = []
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            _, key = await create_key(session, "admin", ["admin"])
        admin = {"Authorization": f"Bearer {key}"}
        n = 900
        emails = await seed_contacts(engine, n)
        # leases long enough to ride out the restart: writes retry for half of one
        env = worker_env(
            private_settings,
            clean_standin.url,
            MAILER_REGIONS="us-east-1=150",
            MAILER_SEND_BATCH_SIZE="100",
            MAILER_LEASE_SECONDS="30",
        )
        workers = [WorkerProcess(env, tmp_path / f"worker-{i}.log") for i in range(2)]
        async with app.router.lifespan_context(app), _client(app) as client:
            campaign = await factories.campaign(client, admin)
            r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
            assert r.status_code == 202, r.text

            await wait_sent(control, 200)
            await asyncio.to_thread(private_pg.restart, 1.0)
            sent_by_restart = control.sent()
            assert sent_by_restart < n

            done = await factories.wait_for_status(
                client, admin, campaign["id"], {"completed"}, 120
            )
            messages = await factories.all_messages(client, admin, campaign["id"])
        seen = recipients(control)
        logs = "\n".join(w.log_path.read_text(errors="replace") for w in workers)
        assert set(seen) == set(emails), logs[-5000:]
        duplicates = sum(c - 1 for c in seen.values())
        stats = done["stats"]
        assert duplicates <= stats["resent"], logs[-5000:]
        assert stats["sent"] == n and stats["failed"] == 0 and stats["queued"] == 0
        assert {m["status"] for m in messages} == {"sent"}
        assert "db_write_retry" in logs  # the restart was felt, and ridden out:
        assert "send_failed_unexpectedly" not in logs  # no outcome was lost on the way
    finally:
        for worker in workers:
            worker.stop()
        await engine.dispose()


def _client(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://mailer.test")
