"""A ``mailer worker --queues webhooks`` SIGKILLed with requests in flight loses nothing:
what it claimed is claimed again once its lease lapses, with the same webhook-id."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from mailer.config import Settings
from mailer.db import transaction
from mailer.webhook_out import outbox
from tests.fixtures.workers import WorkerProcess, worker_env
from tests.webhook_out.conftest import Receiver, add_endpoint, deliveries, wait_for

WORKER_ENV = {
    "MAILER_WEBHOOKS_ALLOW_PRIVATE": "true",
    "MAILER_WEBHOOKS_LEASE_SECONDS": "3",
    "MAILER_WEBHOOKS_RETRY_SCHEDULE": "0.2,0.3,0.5,1,1,1",
    "MAILER_WEBHOOKS_TIMEOUT_SECONDS": "5",
    "MAILER_WEBHOOKS_POLL_SECONDS": "0.05",
}


async def test_a_worker_killed_mid_delivery_loses_nothing(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    receiver: Receiver,
    settings: Settings,
    tmp_path: Any,
) -> None:
    workers: list[WorkerProcess] = []

    def start_worker(**env: str) -> WorkerProcess:
        # the webhooks queue alone: this process is the deliverer (no child in between)
        full = worker_env(settings, "http://127.0.0.1:9", **env)
        worker = WorkerProcess(full, tmp_path / f"w{len(workers)}.log", "--queues", "webhooks")
        workers.append(worker)
        return worker

    try:
        await _kill_and_restart(sessionmaker, engine, receiver, start_worker)
    finally:
        for w in workers:
            w.stop()


async def _kill_and_restart(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    receiver: Receiver,
    start_worker: Any,
) -> None:
    _, secret = await add_endpoint(sessionmaker, receiver.url)
    async with transaction(sessionmaker) as session:
        for n in range(60):
            await outbox.emit(session, "message.delivered", {"n": n}, message_id=n % 20)
    receiver.delay = 30.0  # answers nothing while the worker lives

    first = start_worker(**WORKER_ENV)
    await wait_for(lambda: len(receiver.received) >= 10, timeout=30)
    first.kill()  # SIGKILL, requests in flight, nothing recorded
    in_flight = set(receiver.ids())
    assert {r.status for r in await deliveries(engine)} == {"pending"}

    receiver.delay = 0.0
    start_worker(**WORKER_ENV)

    async def all_delivered() -> bool:
        return all(r.status == "delivered" for r in await deliveries(engine))

    await wait_for(all_delivered, timeout=60)
    rows = await deliveries(engine)
    ids = receiver.ids()
    assert set(ids) == {r.webhook_id for r in rows}  # nothing lost
    assert in_flight <= set(ids)
    # the events of the killed requests came again under the same id; no other doubles
    doubles = {i for i in ids if ids.count(i) > 1}
    assert doubles == in_flight
    verifier = Webhook(secret)
    bodies: dict[str, bytes] = {}
    for got in receiver.received:
        verifier.verify(got.body, got.headers)
        assert bodies.setdefault(got.headers["webhook-id"], got.body) == got.body
    await asyncio.sleep(0)
