"""``/v1/webhooks``: endpoints, secret, delivery log, retry, replay, test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from mailer.db import transaction
from mailer.webhook_out import outbox
from mailer.webhook_out.delivery import Deliverer
from tests.webhook_out.conftest import Receiver, deliveries


async def test_create_shows_the_secret_once(
    hook_client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    body = {
        "url": "https://hooks.example.com/mail",
        "event_types": ["message.*", "contact.unsubscribed"],
        "mail_classes": ["transactional"],
        "description": "resets",
    }
    created = await hook_client.post("/v1/webhooks", json=body, headers=admin)
    assert created.status_code == 201, created.text
    out = created.json()
    assert out["secret"].startswith("whsec_") and len(out["secret"]) >= 6 + 32
    assert out["event_types"] == ["message.*", "contact.unsubscribed"]
    assert out["enabled"] is True
    got = await hook_client.get(f"/v1/webhooks/{out['id']}", headers=admin)
    assert got.status_code == 200
    assert "secret" not in got.json()
    listed = await hook_client.get("/v1/webhooks", headers=admin)
    assert [e["id"] for e in listed.json()["items"]] == [out["id"]]
    assert all("secret" not in e for e in listed.json()["items"])


async def test_list_is_cursor_paginated(
    hook_client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    ids = []
    for n in range(3):
        r = await hook_client.post(
            "/v1/webhooks", json={"url": f"https://h{n}.example.com/"}, headers=admin
        )
        ids.append(r.json()["id"])
    first = (await hook_client.get("/v1/webhooks?limit=2", headers=admin)).json()
    assert [e["id"] for e in first["items"]] == ids[:2]
    second = (
        await hook_client.get(f"/v1/webhooks?limit=2&cursor={first['next_cursor']}", headers=admin)
    ).json()
    assert [e["id"] for e in second["items"]] == ids[2:]
    assert second["next_cursor"] is None


async def test_patch_and_delete(hook_client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    r = await hook_client.post(
        "/v1/webhooks", json={"url": "https://a.example.com/"}, headers=admin
    )
    endpoint_id = r.json()["id"]
    patched = await hook_client.patch(
        f"/v1/webhooks/{endpoint_id}",
        json={"enabled": False, "event_types": ["campaign.*"], "description": "ops"},
        headers=admin,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["enabled"] is False
    assert patched.json()["event_types"] == ["campaign.*"]
    assert (
        await hook_client.delete(f"/v1/webhooks/{endpoint_id}", headers=admin)
    ).status_code == 204
    assert (await hook_client.get(f"/v1/webhooks/{endpoint_id}", headers=admin)).status_code == 404
    assert (
        await hook_client.delete(f"/v1/webhooks/{endpoint_id}", headers=admin)
    ).status_code == 404


async def test_bad_input_is_a_422_naming_the_field(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    for body, field in (
        ({"url": "http://hooks.example.com/"}, "url"),  # http outside loopback/dev
        ({"url": "https://10.0.0.1/"}, "url"),  # a private address, refused when saved too
        ({"url": "https://h.example.com/", "event_types": ["message.nope"]}, "event_types"),
        ({"url": "https://h.example.com/", "extra": 1}, "extra"),
    ):
        r = await client.post("/v1/webhooks", json=body, headers=admin)
        assert r.status_code == 422, (body, r.text)
        assert field in str(r.json()["error"]["details"])


async def test_scope_webhooks_or_admin(client: httpx.AsyncClient, make_key: Any) -> None:
    hooks = {"Authorization": f"Bearer {await make_key('webhooks')}"}
    campaigns = {"Authorization": f"Bearer {await make_key('campaigns')}"}
    assert (await client.get("/v1/webhooks", headers=hooks)).status_code == 200
    assert (await client.get("/v1/webhooks", headers=campaigns)).status_code == 403
    assert (await client.get("/v1/webhooks")).status_code == 401


async def test_test_event_delivery_log_retry_and_replay(
    hook_client: httpx.AsyncClient,
    admin: dict[str, str],
    receiver: Receiver,
    deliverer: Deliverer,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    created = (
        await hook_client.post(
            "/v1/webhooks", json={"url": receiver.url, "event_types": ["message.*"]}, headers=admin
        )
    ).json()
    endpoint_id, secret = created["id"], created["secret"]

    # the test event reaches it whatever it subscribes to
    tested = await hook_client.post(f"/v1/webhooks/{endpoint_id}/test", headers=admin)
    assert tested.status_code == 202, tested.text
    assert tested.json()["type"] == "webhook.test"
    await deliverer.drain()
    [got] = receiver.received
    assert Webhook(secret).verify(got.body, got.headers)["type"] == "webhook.test"

    # a failing answer is in the log: status, attempts, code, time, next attempt
    receiver.status = 500
    async with transaction(sessionmaker) as session:
        await outbox.emit(session, "message.sent", {"n": 1}, message_id=1)
    await deliverer.drain()
    log = (await hook_client.get(f"/v1/webhooks/{endpoint_id}/deliveries", headers=admin)).json()
    newest, oldest = log["items"]
    assert newest["type"] == "message.sent"
    assert newest["status"] == "pending" and newest["attempts"] == 1
    assert newest["last_status_code"] == 500 and newest["last_attempt_at"]
    assert newest["next_attempt_at"] is not None
    assert oldest["status"] == "delivered" and oldest["next_attempt_at"] is None
    only_delivered = await hook_client.get(
        f"/v1/webhooks/{endpoint_id}/deliveries?status=delivered", headers=admin
    )
    assert [d["id"] for d in only_delivered.json()["items"]] == [oldest["id"]]

    # a pending delivery is being retried already
    r = await hook_client.post(
        f"/v1/webhooks/{endpoint_id}/deliveries/{newest['id']}/retry", headers=admin
    )
    assert r.status_code == 409

    # dead, then retried by hand: the same webhook-id, a fresh set of attempts
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE webhook_deliveries SET status = 'dead' WHERE id = :id"),
            {"id": newest["id"]},
        )
    receiver.status = 200
    r = await hook_client.post(
        f"/v1/webhooks/{endpoint_id}/deliveries/{newest['id']}/retry", headers=admin
    )
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending" and r.json()["attempts"] == 0
    await deliverer.drain()
    assert receiver.ids()[-1] == newest["webhook_id"]
    assert [d.status for d in await deliveries(engine, endpoint_id)] == ["delivered"] * 2

    # replay since a time: the events again, same ids and payloads, in order
    before = len(receiver.received)
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    r = await hook_client.post(
        f"/v1/webhooks/{endpoint_id}/replay", params={"since": since}, headers=admin
    )
    assert r.status_code == 202, r.text
    assert r.json() == {"replayed": 1}  # the test event is not replayed
    await deliverer.drain()
    assert receiver.ids()[before:] == [newest["webhook_id"]]
    assert len(await deliveries(engine, endpoint_id)) == 3


async def test_unknown_ids_are_404(hook_client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    for method, path in (
        ("GET", "/v1/webhooks/99"),
        ("PATCH", "/v1/webhooks/99"),
        ("POST", "/v1/webhooks/99/test"),
        ("GET", "/v1/webhooks/99/deliveries"),
        ("POST", "/v1/webhooks/99/deliveries/5/retry"),
        ("POST", "/v1/webhooks/99/rotate-secret"),
    ):
        r = await hook_client.request(method, path, headers=admin, json={})
        assert r.status_code == 404, (method, path, r.text)
