"""Contacts by address (SPEC 5): PUT creates or replaces, GET reads, addresses normalised."""

from __future__ import annotations

from sqlalchemy import text

from mailer.db import transaction


async def test_put_creates_then_updates(client, admin):
    r = await client.put("/v1/contacts/ada@example.test", headers=admin,
                         json={"attributes": {"first_name": "Ada"}, "tags": ["vip", "news"]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["email"] == "ada@example.test" and body["tags"] == ["news", "vip"]
    assert body["status"] == "subscribed" and body["suppressed"] is False
    r = await client.put("/v1/contacts/ada@example.test", headers=admin,
                         json={"attributes": {"first_name": "Ada L."}})
    assert r.status_code == 200
    assert r.json()["attributes"] == {"first_name": "Ada L."} and r.json()["tags"] == []


async def test_addresses_are_normalised(client, admin):
    r = await client.put("/v1/contacts/%20Ada@Example.TEST%20", headers=admin, json={})
    assert r.status_code == 201 and r.json()["email"] == "ada@example.test"
    r = await client.get("/v1/contacts/ADA@example.test", headers=admin)
    assert r.status_code == 200 and r.json()["email"] == "ada@example.test"


async def test_an_invalid_address_is_a_422_naming_it(client, admin):
    r = await client.put("/v1/contacts/not-an-address", headers=admin, json={})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == ["path", "email"]


async def test_unknown_fields_are_a_422(client, admin):
    r = await client.put("/v1/contacts/a@example.test", headers=admin, json={"name": "x"})
    assert r.status_code == 422


async def test_unknown_contact_is_a_404(client, admin):
    r = await client.get("/v1/contacts/nobody@example.test", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_get_shows_suppression(client, admin, sessionmaker):
    await client.put("/v1/contacts/b@example.test", headers=admin, json={})
    async with transaction(sessionmaker) as session:
        await session.execute(text("INSERT INTO suppressions (email, reason, scope)"
                                   " VALUES ('b@example.test', 'bounce', 'all')"))
    r = await client.get("/v1/contacts/b@example.test", headers=admin)
    assert r.json()["suppressed"] is True
