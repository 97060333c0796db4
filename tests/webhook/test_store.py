"""Notifications stored once by group commit: what the webhook answers when the database
refuses one of a batch, loses a connection, or when a new notification must wake the
events worker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.queues import EVENTS_QUEUE
from mailer.webhook.sns import SnsMessage
from mailer.webhook.store import PROCESS_JOB, Unavailable
from tests.fixtures.sns import TOPIC, Signer, ses_event
from tests.webhook.conftest import post


def delivery() -> dict[str, Any]:
    return ses_event("Delivery", "0100-unknown", ["a@example.test"])


def message(signer: Signer, ses_message: dict[str, Any] | str) -> tuple[SnsMessage, bytes]:
    body = signer.notification(ses_message)
    return SnsMessage("Notification", body["MessageId"], TOPIC, body), json.dumps(body).encode()


async def stored_ids(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT sns_message_id FROM sns_notifications"))
        return {r[0] for r in rows}


async def test_a_notification_the_database_refuses_fails_alone(
    app, engine: AsyncEngine, sns_signer: Signer
) -> None:
    """A row the database refuses (here a type longer than its column, which verification
    never lets through) is 5xx alone; the rest of its batch is stored."""
    good, good_raw = message(sns_signer, delivery())
    bad, bad_raw = message(sns_signer, delivery())
    bad = SnsMessage("Notification" * 10, bad.message_id, TOPIC, bad.body)
    store = app.state.sns_store
    results = await asyncio.gather(
        store.store(good, good_raw), store.store(bad, bad_raw), return_exceptions=True
    )
    assert results[0] is True
    assert isinstance(results[1], Unavailable) and results[1].status_code == 503
    assert await stored_ids(engine) == {good.message_id}


async def test_a_nul_in_a_notification_is_stored_not_refused(
    client, engine: AsyncEngine, sns_signer: Signer
) -> None:
    """jsonb holds no \\u0000: a genuine notification with one is stored (the NUL made
    U+FFFD) and answered 200, not 503 until SNS gives up on it."""
    body = sns_signer.notification("nul \u0000 here")
    r = await post(client, body)
    assert r.status_code == 200, r.text
    async with engine.connect() as conn:
        kept = (
            await conn.execute(
                text("SELECT body->>'Message' FROM sns_notifications WHERE sns_message_id = :m"),
                {"m": body["MessageId"]},
            )
        ).scalar_one()
    assert kept == "nul \ufffd here"


async def test_a_connection_lost_between_flushes_is_replaced(
    app, client, engine: AsyncEngine, sns_signer: Signer
) -> None:
    """The held connection's backend is gone (a restart, a failover): the next flush tries
    once more on a fresh connection and the notification is stored."""
    first = sns_signer.notification(delivery())
    assert (await post(client, first)).status_code == 200
    async with engine.connect() as conn:
        killed = (
            await conn.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    " AND query LIKE '%INSERT INTO sns_notifications%'"
                )
            )
        ).scalar_one()
    assert killed >= 1
    second = sns_signer.notification(delivery())
    r = await post(client, second)
    assert r.status_code == 200, r.text
    assert r.json()["stored"] is True
    assert await stored_ids(engine) == {first["MessageId"], second["MessageId"]}


async def test_a_new_notification_wakes_the_events_worker_once(
    app, client, redis, sns_signer: Signer
) -> None:
    notification = sns_signer.notification(delivery())
    for _ in range(3):  # SNS delivering the same notification again
        assert (await post(client, notification)).status_code == 200
    await app.state.sns_store.waker.close()  # the wake-up runs after the answers
    jobs = await redis.zrange(EVENTS_QUEUE, 0, -1)
    assert len(jobs) == 1
    job = await redis.get(b"arq:job:" + jobs[0])
    assert job is not None and PROCESS_JOB.encode() in job
