"""State changes report themselves in their own transaction: campaign.*, contact.unsubscribed,
suppression.*, import.completed (triggers: every path that changes the state reports it)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailer.campaign import repository as campaign_repository
from mailer.config import Settings
from mailer.db import transaction
from tests import factories
from tests.subscription.conftest import confirmation_mails, form, submit, topic
from tests.webhook_out.conftest import add_endpoint, deliveries


async def _types(engine: AsyncEngine) -> list[str]:
    return [r.type for r in await deliveries(engine)]


async def test_campaign_started_paused_resumed_completed(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    await add_endpoint(sessionmaker, "https://hooks.example.com/", event_types=["campaign.*"])
    await factories.contacts(client, admin, 3)
    campaign = await factories.campaign(client, admin)
    cid = campaign["id"]
    assert (await client.post(f"/v1/campaigns/{cid}/send", headers=admin)).status_code == 202
    assert (await client.post(f"/v1/campaigns/{cid}/pause", headers=admin)).status_code == 200
    assert (await client.post(f"/v1/campaigns/{cid}/resume", headers=admin)).status_code == 200
    # the reputation guard's auto-pause, with its reason
    async with transaction(sessionmaker) as session:
        assert await campaign_repository.pause(session, "bounce rate 7.0% over 5%", campaign_id=cid)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE campaigns SET status = 'completed' WHERE id = :id"), {"id": cid}
        )

    rows = await deliveries(engine)
    assert [r.type for r in rows] == [
        "campaign.started",
        "campaign.paused",
        "campaign.resumed",
        "campaign.paused",
        "campaign.completed",
    ]
    data = [r.payload["data"] for r in rows]
    assert {d["campaign_id"] for d in data} == {cid}
    assert data[1]["reason"] and data[3]["reason"] == "bounce rate 7.0% over 5%"
    assert {"recipients", "sent", "delivered", "bounced"} <= set(data[4]["stats"])
    assert data[0]["mail_class"] == "marketing"


async def test_campaign_filter_hears_only_its_campaign(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    await factories.contacts(client, admin, 1)
    one = await factories.campaign(client, admin)
    two = await factories.campaign(client, admin, name="other")
    await add_endpoint(sessionmaker, "https://hooks.example.com/", campaign_ids=[two["id"]])
    for c in (one, two):
        await client.post(f"/v1/campaigns/{c['id']}/send", headers=admin)
    rows = await deliveries(engine)
    assert {r.payload["data"]["campaign_id"] for r in rows} == {two["id"]}


async def test_suppressions_created_and_deleted(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    await add_endpoint(sessionmaker, "https://hooks.example.com/")
    r = await client.put(
        "/v1/suppressions/Someone@Example.com", json={"reason": "asked"}, headers=admin
    )
    assert r.status_code == 201, r.text
    assert (
        await client.delete("/v1/suppressions/someone@example.com", headers=admin)
    ).status_code == 204
    rows = await deliveries(engine)
    assert [r.type for r in rows] == ["suppression.created", "suppression.deleted"]
    assert rows[0].payload["data"] == {
        "email": "someone@example.com",
        "reason": "asked",
        "scope": "all",
        "source": "manual",
    }


async def test_contact_unsubscribed(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    await add_endpoint(sessionmaker, "https://hooks.example.com/", event_types=["contact.*"])
    await client.put("/v1/contacts/ann@example.com", json={"attributes": {}}, headers=admin)
    r = await client.put(
        "/v1/contacts/ann@example.com", json={"status": "unsubscribed"}, headers=admin
    )
    assert r.status_code == 200, r.text
    [row] = await deliveries(engine)
    assert row.type == "contact.unsubscribed"
    assert row.payload["data"]["email"] == "ann@example.com"
    assert row.payload["data"]["source"] == "api"


async def test_topic_subscriptions_report_subscribed_and_unsubscribed_with_the_topic(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings: Settings,
) -> None:
    await add_endpoint(sessionmaker, "https://hooks.example.com/", event_types=["contact.*"])
    news = await topic(client, admin, "News")  # double opt-in
    offers = await topic(client, admin, "Offers", double_opt_in=False)
    f = await form(client, admin, [news, offers])
    r = await submit(client, settings, f["id"], "ann@example.com", topics=[str(news), str(offers)])
    assert r.status_code == 200, r.text
    # the unconfirmed News reports nothing yet; Offers is subscribed at once
    [row] = await deliveries(engine)
    assert row.type == "contact.subscribed"
    assert row.payload["data"] | {"contact_id": None} == {
        "contact_id": None,
        "email": "ann@example.com",
        "topic_id": offers,
        "topic": "Offers",
        "source": "form",
    }
    [(url,)] = [(u,) for _, u in await confirmation_mails(engine, "ann@example.com")]
    assert (await client.post("/confirm/" + url.rsplit("/", 1)[1])).status_code == 200
    r = await client.put(
        "/v1/contacts/ann@example.com/topics",
        headers=admin,
        json={"topics": [{"topic_id": offers, "status": "unsubscribed"}]},
    )
    assert r.status_code == 200, r.text
    rows = await deliveries(engine)
    assert [(x.type, x.payload["data"]["topic"], x.payload["data"]["source"]) for x in rows] == [
        ("contact.subscribed", "Offers", "form"),
        ("contact.subscribed", "News", "confirmation_link"),
        ("contact.unsubscribed", "Offers", "api"),
    ]


async def test_import_completed(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    await add_endpoint(sessionmaker, "https://hooks.example.com/")
    async with engine.begin() as conn:
        import_id = await conn.scalar(
            text(
                "INSERT INTO contact_imports (status, total_rows, created, rejected)"
                " VALUES ('running', 3, 2, 1) RETURNING id"
            )
        )
        await conn.execute(
            text("UPDATE contact_imports SET status = 'completed' WHERE id = :id"),
            {"id": import_id},
        )
    [row] = await deliveries(engine)
    assert row.type == "import.completed"
    assert row.payload["data"] == {
        "import_id": import_id,
        "total_rows": 3,
        "created": 2,
        "updated": 0,
        "rejected": 1,
    }


async def test_a_rolled_back_change_reports_nothing(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine
) -> None:
    await add_endpoint(sessionmaker, "https://hooks.example.com/")
    async with engine.connect() as conn:
        trans = await conn.begin()
        await conn.execute(
            text(
                "INSERT INTO suppressions (email, reason, scope, source)"
                " VALUES ('x@example.com', 'r', 'all', 'manual')"
            )
        )
        inside: Any = await conn.scalar(text("SELECT count(*) FROM webhook_deliveries"))
        assert inside == 1
        await trans.rollback()
    assert await deliveries(engine) == []
