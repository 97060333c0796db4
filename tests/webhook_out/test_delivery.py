"""Delivery: Standard Webhooks signatures any published verifier accepts, retries with the
same webhook-id, per-message order, dead state, auto-disable."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from standardwebhooks import Webhook, WebhookVerificationError

from mailer.db import transaction
from mailer.webhook_out import outbox
from mailer.webhook_out.delivery import Deliverer
from tests.webhook_out.conftest import Receiver, add_endpoint, deliveries, wait_for


async def emit(
    sessionmaker: async_sessionmaker[AsyncSession],
    event_type: str,
    message_id: int | None = None,
    **data: object,
) -> None:
    async with transaction(sessionmaker) as session:
        await outbox.emit(session, event_type, dict(data), message_id=message_id)


async def test_every_delivery_verifies_with_the_standardwebhooks_package(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    _, secret = await add_endpoint(sessionmaker, receiver.url)
    for n, event_type in enumerate(outbox.EVENT_TYPES):
        await emit(sessionmaker, event_type, n=n, name="Zoë \u2603")

    await deliverer.drain()

    assert len(receiver.received) == len(outbox.EVENT_TYPES)
    verifier = Webhook(secret)
    for got in receiver.received:
        payload = verifier.verify(got.body, got.headers)
        assert payload == got.payload
        assert got.headers["webhook-id"].startswith("msg_")
        assert got.headers["content-type"] == "application/json"
    assert [r.payload["type"] for r in receiver.received] == list(outbox.EVENT_TYPES)
    assert {r.status for r in await deliveries(engine)} == {"delivered"}
    # another secret does not verify
    with pytest.raises(WebhookVerificationError):
        Webhook(outbox_secret()).verify(receiver.received[0].body, receiver.received[0].headers)


def outbox_secret() -> str:
    from mailer.webhook_out.signing import new_secret

    return new_secret()


async def test_signatures_verify_across_a_secret_rotation(
    sessionmaker: async_sessionmaker[AsyncSession],
    hook_client: httpx.AsyncClient,
    admin: dict[str, str],
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    created = await hook_client.post("/v1/webhooks", json={"url": receiver.url}, headers=admin)
    assert created.status_code == 201, created.text
    endpoint_id, old = created.json()["id"], created.json()["secret"]
    await emit(sessionmaker, "webhook.test", n=1)
    await deliverer.drain()

    rotated = await hook_client.post(
        f"/v1/webhooks/{endpoint_id}/rotate-secret", json={"overlap_seconds": 3600}, headers=admin
    )
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != old and new.startswith("whsec_")
    await emit(sessionmaker, "webhook.test", n=2)
    await deliverer.drain()

    # overlap: receivers that know either secret accept the same request
    before, during = receiver.received
    Webhook(old).verify(before.body, before.headers)
    Webhook(old).verify(during.body, during.headers)
    Webhook(new).verify(during.body, during.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(before.body, before.headers)

    # the overlap ends: only the new secret signs
    ended = await hook_client.post(
        f"/v1/webhooks/{endpoint_id}/rotate-secret", json={"overlap_seconds": 0}, headers=admin
    )
    newest = ended.json()["secret"]
    await emit(sessionmaker, "webhook.test", n=3)
    await deliverer.drain()
    after = receiver.received[2]
    Webhook(newest).verify(after.body, after.headers)
    for stale in (old, new):
        with pytest.raises(WebhookVerificationError):
            Webhook(stale).verify(after.body, after.headers)


async def test_receiver_down_then_up_every_event_once_per_id_in_order_per_message(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    receiver: Receiver,
    fast_deliverer: Deliverer,
) -> None:
    _, secret = await add_endpoint(sessionmaker, receiver.url)
    await receiver.stop()  # down: connections refused
    kinds = ("message.sent", "message.delivered", "message.opened", "message.clicked")
    for message_id in range(1, 11):
        for kind in kinds:
            await emit(sessionmaker, kind, message_id=message_id, message=message_id)
    fast_deliverer.start()

    # it tried, failed, and holds the rest back for later
    async def retried() -> bool:
        async with engine.connect() as conn:
            n = await conn.scalar(
                text("SELECT count(*) FROM webhook_deliveries WHERE last_error IS NOT NULL")
            )
        return bool(n)

    await wait_for(retried)
    await receiver.start()  # up again, on the same port

    async def all_delivered() -> bool:
        rows = await deliveries(engine)
        return all(r.status == "delivered" for r in rows)

    await wait_for(all_delivered, timeout=30)

    rows = await deliveries(engine)
    assert len(rows) == 40
    ids = receiver.ids()
    # exactly once per webhook-id (a retry reuses the id of its event; none was lost)
    assert sorted(set(ids)) == sorted(r.webhook_id for r in rows)
    assert len(ids) == len(set(ids))
    # per message, in the order written
    for message_id in range(1, 11):
        got = [
            r.payload["type"]
            for r in receiver.received
            if r.payload["data"]["message"] == message_id
        ]
        assert got == list(kinds)
    verifier = Webhook(secret)
    for got in receiver.received:
        verifier.verify(got.body, got.headers)
    assert max(r.attempts for r in rows) >= 1


async def test_a_later_event_waits_for_an_earlier_one_still_retrying(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    receiver: Receiver,
    fast_deliverer: Deliverer,
) -> None:
    await add_endpoint(sessionmaker, receiver.url)
    receiver.status = 503
    await emit(sessionmaker, "message.sent", message_id=7, step=1)
    await emit(sessionmaker, "message.delivered", message_id=7, step=2)
    await emit(sessionmaker, "message.sent", message_id=8, step=1)  # another message
    fast_deliverer.start()

    async def failed_twice() -> bool:
        return len([r for r in receiver.received if r.payload["data"]["step"] == 1]) >= 3

    await wait_for(failed_twice)
    # only first events were tried while the first one of message 7 kept failing
    assert {r.payload["data"]["step"] for r in receiver.received} == {1}
    receiver.status = 200
    await wait_for(lambda: any(r.payload["data"]["step"] == 2 for r in receiver.received))
    steps = [(r.payload["type"], r.headers["webhook-id"]) for r in receiver.received]
    first_delivered = next(i for i, (t, _) in enumerate(steps) if t == "message.delivered")
    rows = await deliveries(engine)
    sent_seven = next(r for r in rows if r.message_id == 7 and r.type == "message.sent")
    # every attempt of message 7's first event came before its second event
    assert all(
        i < first_delivered for i, (_, wid) in enumerate(steps) if wid == sent_seven.webhook_id
    )
    # the retries of one event all carry its webhook-id
    rows = await deliveries(engine)
    first = next(r for r in rows if r.message_id == 7 and r.type == "message.sent")
    assert [r.headers["webhook-id"] for r in receiver.received].count(first.webhook_id) >= 2


async def test_attempts_used_up_is_dead_and_does_not_block_the_next(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    receiver: Receiver,
    fast_deliverer: Deliverer,
) -> None:
    await add_endpoint(sessionmaker, receiver.url)
    receiver.status = 400
    await emit(sessionmaker, "message.sent", message_id=9, step=1)
    fast_deliverer.start()

    async def dead() -> bool:
        return [r.status for r in await deliveries(engine)] == ["dead"]

    await wait_for(dead)
    [row] = await deliveries(engine)
    # the first attempt and one per retry of the schedule
    assert row.attempts == 1 + len(fast_deliverer.settings.webhooks_retry_schedule)
    assert row.last_status_code == 400
    assert row.last_error == "answered 400"
    receiver.status = 200
    await emit(sessionmaker, "message.delivered", message_id=9, step=2)
    await wait_for(lambda: any(r.payload["data"]["step"] == 2 for r in receiver.received))


async def test_a_long_run_of_failures_disables_the_endpoint(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    receiver: Receiver,
    make_deliverer,  # type: ignore[no-untyped-def]
) -> None:
    endpoint_id, _ = await add_endpoint(sessionmaker, receiver.url)
    receiver.status = 500
    for n in range(5):
        await emit(sessionmaker, "webhook.test", n=n)
    deliverer = make_deliverer(
        webhooks_disable_after_failures=3,
        webhooks_disable_after_seconds=0.0,
        webhooks_retry_schedule=[0.1, 0.1, 0.1],
    )
    deliverer.start()

    async def disabled() -> bool:
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = :id"),
                    {"id": endpoint_id},
                )
            ).one()
        return not row.enabled and "failed attempts in a row" in row.disabled_reason

    await wait_for(disabled)


async def test_the_log_keeps_delivered_and_dead_deliveries_for_the_retention(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    from mailer.webhook_out import delivery_repository as repository

    await add_endpoint(sessionmaker, "https://hooks.example.com/")
    for _ in range(4):
        await emit(sessionmaker, "webhook.test")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE webhook_deliveries SET created_at = now() - interval '40 days',"
                " status = CASE WHEN id = 1 THEN 'delivered' WHEN id = 2 THEN 'dead'"
                " ELSE 'pending' END WHERE id < 4"
            )
        )
    async with transaction(sessionmaker) as session:
        assert await repository.sweep(session, 30, 100) == 2
    # an old pending one is kept (never lost), and everything recent
    assert [r.id for r in await deliveries(engine)] == [3, 4]


async def test_the_claim_is_never_jit_compiled(engine: AsyncEngine) -> None:
    # the claim's estimated cost grows with the table (a LIMIT over a filtered index scan
    # is costed as the whole scan); past jit_above_cost PostgreSQL compiled it on every
    # execution (490 ms of a 1 ms claim). The app's connections run with JIT off.
    from mailer.webhook_out.delivery_repository import _CLAIM

    async with engine.connect() as conn:
        await conn.execute(text("SET LOCAL jit_above_cost = 0"))  # JIT for anything
        explained = await conn.execute(
            text("EXPLAIN (ANALYZE, FORMAT JSON) " + _CLAIM.text),
            {
                "token": "t",
                "lease": 30.0,
                "limit": 10,
                "cap": 4,
                "flying_ids": [],
                "flying_n": [],
            },
        )
        [plan] = explained.scalar_one()
        await conn.rollback()
    assert "Planning Time" in plan and "JIT" not in plan
