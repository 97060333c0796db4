"""GET /v1/contacts/{email}/messages and the contact's console page: the campaign and
transactional mail sent to one contact, newest first, a page at a time, each with its
campaign and its events; found through indexes, not a scan of every message."""

from __future__ import annotations

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailer.campaign import audience_fixup
from mailer.db import transaction
from tests import factories
from tests.console.helpers import make_person, sign_in

ADA = "ada@example.test"


async def _launch(
    client: httpx.AsyncClient, admin: dict[str, str], sessionmaker: async_sessionmaker[AsyncSession]
) -> int:
    """A campaign to every contact, its audience fixed as the start job fixes it."""
    campaign = await factories.campaign(client, admin)
    r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
    assert r.status_code == 202, r.text
    async with transaction(sessionmaker) as session:
        await audience_fixup.fix_audience(session, campaign["id"])
    return int(campaign["id"])


async def _seed(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> tuple[int, int, int]:
    """Two contacts, two campaigns to both, one transactional message to Ada between the
    campaigns; events on Ada's messages. (first campaign, transactional message, second
    campaign)."""
    await client.put(f"/v1/contacts/{ADA}", headers=admin, json={"attributes": {}})
    await client.put("/v1/contacts/bob@example.test", headers=admin, json={"attributes": {}})
    first = await _launch(client, admin, sessionmaker)
    r = await client.post(
        "/v1/messages",
        headers=admin,
        json={"to": ADA, "from_address": "hi@mailer.test", "subject": "Hi", "html": "<p>Hi</p>"},
    )
    assert r.status_code == 202, r.text
    transactional = int(r.json()["id"])
    second = await _launch(client, admin, sessionmaker)
    async with engine.begin() as conn:
        # as the SNS processing records them (tests/webhook covers that path)
        await conn.execute(
            text(
                "INSERT INTO events (message_id, campaign_id, email, type, subtype, occurred_at,"
                "                    dedup_key)"
                " SELECT m.id, m.campaign_id, m.email, t.type, t.subtype,"
                "        now() + t.n * interval '1 second', 't:' || m.id || t.type"
                "   FROM messages m,"
                "        (VALUES ('delivery', NULL, 1), ('open', NULL, 2),"
                "                ('click', NULL, 3)) AS t(type, subtype, n)"
                "  WHERE m.email = :a AND m.campaign_id = :c"
            ),
            {"a": ADA, "c": first},
        )
        await conn.execute(
            text(
                "INSERT INTO events (message_id, email, type, subtype, occurred_at, dedup_key)"
                " VALUES (:m, :a, 'bounce', 'Permanent', now(), 'tb')"
            ),
            {"m": transactional, "a": ADA},
        )
    return first, transactional, second


async def test_a_contacts_messages_newest_first_with_campaign_and_events(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    first, transactional, second = await _seed(client, admin, sessionmaker, engine)
    seen = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        r = await client.get("/v1/contacts/ADA@example.test/messages", headers=admin, params=params)
        assert r.status_code == 200, r.text
        seen.extend(r.json()["items"])
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert [(m["campaign_id"], m["to"]) for m in seen] == [
        (second, ADA),
        (None, ADA),
        (first, ADA),
    ]
    assert [m["id"] for m in seen] == sorted((m["id"] for m in seen), reverse=True)
    assert seen[1]["id"] == transactional
    assert [(e["type"], e["subtype"]) for e in seen[1]["events"]] == [("bounce", "Permanent")]
    assert [e["type"] for e in seen[2]["events"]] == ["delivery", "open", "click"]
    assert seen[0]["events"] == [] and seen[0]["status"] == "queued"


async def test_unknown_contact_is_404_and_a_bad_cursor_422(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    make_key,  # type: ignore[no-untyped-def]
) -> None:
    r = await client.get("/v1/contacts/nobody@example.test/messages", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    await client.put(f"/v1/contacts/{ADA}", headers=admin, json={"attributes": {}})
    r = await client.get(f"/v1/contacts/{ADA}/messages?cursor=x1", headers=admin)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == ["query", "cursor"]
    tx_only = {"Authorization": f"Bearer {await make_key('transactional')}"}
    assert (await client.get(f"/v1/contacts/{ADA}/messages", headers=tx_only)).status_code == 403


async def test_the_query_reads_indexes_not_every_message(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    first, _, second = await _seed(client, admin, sessionmaker, engine)
    from mailer.message.repository import _OF_CONTACT

    async with engine.begin() as conn:
        # a modest dataset, planned with its statistics: 40,000 campaign messages to other
        # contacts, 2,000 transactional ones to other addresses
        await conn.execute(
            text(
                "INSERT INTO messages (campaign_id, contact_id, email, mail_class)"
                " SELECT c, 1000 + g, 'c' || g || '@example.test', 'marketing'"
                "   FROM unnest(CAST(:c AS bigint[])) c, generate_series(1, 20000) g"
            ),
            {"c": [first, second]},
        )
        await conn.execute(
            text(
                "INSERT INTO messages (email, mail_class)"
                " SELECT 't' || g || '@example.test', 'transactional'"
                "   FROM generate_series(1, 2000) g"
            )
        )
        await conn.execute(text("ANALYZE messages"))
        await conn.execute(text("ANALYZE campaigns"))
        contact_id = (
            await conn.execute(text("SELECT id FROM contacts WHERE email = :a"), {"a": ADA})
        ).scalar_one()
        plan = "\n".join(
            r[0]
            for r in await conn.execute(
                text(f"EXPLAIN {_OF_CONTACT.text}"),
                {"contact_id": contact_id, "email": ADA, "before": 2**63 - 1, "limit": 26},
            )
        )
    assert "Seq Scan on messages" not in plan, plan
    # one probe of the (campaign_id, contact_id) key per campaign, not a walk of it all
    assert "Index Cond: ((campaign_id = c.id) AND (contact_id =" in plan, plan
    assert "ix_messages_transactional_email" in plan, plan


async def test_the_contact_page_lists_them_with_links_and_pages(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    first, transactional, second = await _seed(client, admin, sessionmaker, engine)
    await make_person(sessionmaker, settings, "vi@example.test", "viewer")
    assert (await sign_in(client, "vi@example.test")).status_code == 303
    page = await client.get(f"/console/contacts/{ADA}")
    assert page.status_code == 200
    html = page.text
    assert html.index(f'id="message-{transactional}"') < html.index(
        f'href="/console/campaigns/{first}"'
    )
    assert f'href="/console/campaigns/{second}"' in html
    assert "bounce (Permanent)" in html and "delivery</span>, <span" in html
    assert "older-messages" not in html  # three messages: one page
    # bob's messages are bob's
    bob = (await client.get("/console/contacts/bob@example.test")).text
    assert f'id="message-{transactional}"' not in bob
    r = await client.get(f"/console/contacts/{ADA}?cursor=nope")
    assert r.status_code == 422


async def test_the_contact_page_pages_older_messages(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    sessionmaker: async_sessionmaker[AsyncSession],
    settings,  # type: ignore[no-untyped-def]
) -> None:
    await client.put(f"/v1/contacts/{ADA}", headers=admin, json={"attributes": {}})
    body = {"to": ADA, "from_address": "hi@mailer.test", "subject": "Hi", "html": "<p>Hi</p>"}
    r = await client.post("/v1/messages/batch", headers=admin, json={"messages": [body] * 30})
    ids = sorted((item["id"] for item in r.json()["items"]), reverse=True)
    await make_person(sessionmaker, settings, "vi@example.test", "viewer")
    await sign_in(client, "vi@example.test")
    html = (await client.get(f"/console/contacts/{ADA}")).text
    assert f'id="message-{ids[24]}"' in html and f'id="message-{ids[25]}"' not in html
    older = f"/console/contacts/{ADA.replace('@', '%40')}?cursor={ids[24]}#messages"
    assert f'id="older-messages" href="{older}"' in html
    html = (await client.get(older.split("#")[0])).text
    assert f'id="message-{ids[25]}"' in html and f'id="message-{ids[29]}"' in html
    assert f'id="message-{ids[24]}"' not in html and "older-messages" not in html
