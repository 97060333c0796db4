"""Contacts by address: PUT creates or replaces, GET reads, addresses normalised."""

from __future__ import annotations

from sqlalchemy import text

from mailer.db import transaction


async def test_put_creates_then_updates(client, admin):
    r = await client.put(
        "/v1/contacts/ada@example.test",
        headers=admin,
        json={"attributes": {"first_name": "Ada"}, "tags": ["vip", "news"]},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["email"] == "ada@example.test" and body["tags"] == ["news", "vip"]
    assert body["status"] == "subscribed" and body["suppressed"] is False
    r = await client.put(
        "/v1/contacts/ada@example.test",
        headers=admin,
        json={"attributes": {"first_name": "Ada L."}},
    )
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
        await session.execute(
            text(
                "INSERT INTO suppressions (email, reason, scope)"
                " VALUES ('b@example.test', 'bounce', 'all')"
            )
        )
    r = await client.get("/v1/contacts/b@example.test", headers=admin)
    assert r.json()["suppressed"] is True


async def test_contacts_are_listed_by_cursor_with_an_optional_filter(client, admin):
    import json

    for i in range(5):
        await client.put(
            f"/v1/contacts/c{i}@example.test",
            headers=admin,
            json={"attributes": {"n": i}, "tags": ["even"] if i % 2 == 0 else []},
        )
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/contacts", headers=admin, params=params)
        assert r.status_code == 200, r.text
        seen += [c["email"] for c in r.json()["items"]]
        cursor = r.json()["next_cursor"]
        if not cursor:
            break
    assert seen == [f"c{i}@example.test" for i in range(5)]
    tree = {
        "all": [
            {"field": "tags", "op": "contains", "value": "even"},
            {"field": "attributes.n", "op": "gt", "value": 0},
        ]
    }
    r = await client.get("/v1/contacts", headers=admin, params={"filter": json.dumps(tree)})
    assert [c["email"] for c in r.json()["items"]] == ["c2@example.test", "c4@example.test"]
    assert r.json()["items"][0]["suppressed"] is False
    for bad, path in (
        ("{nope", ["query", "filter"]),
        (json.dumps({"field": "x", "op": "eq", "value": 1}), ["filter", "field"]),
    ):
        r = await client.get("/v1/contacts", headers=admin, params={"filter": bad})
        assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == path


async def test_status_changes_are_recorded_with_source_and_time(client, admin, sessionmaker):
    from mailer.contact import repository

    await client.put("/v1/contacts/s@example.test", headers=admin, json={})
    r = await client.put(
        "/v1/contacts/s@example.test", headers=admin, json={"status": "unsubscribed"}
    )
    assert r.json()["status"] == "unsubscribed"
    await client.put(
        "/v1/contacts/s@example.test", headers=admin, json={"status": "unsubscribed"}
    )  # no change: not recorded again
    async with transaction(sessionmaker) as session:
        changed = await repository.record_status_change(
            session, ["s@example.test", "nobody@example.test"], "subscribed", "unsubscribe_link"
        )
        assert len(changed) == 1
        history = await repository.status_changes(session, changed[0])
    assert [(h.status, h.source) for h in history] == [
        ("unsubscribed", "api"),
        ("subscribed", "unsubscribe_link"),
    ]
    assert history[0].changed_at <= history[1].changed_at
    r = await client.put("/v1/contacts/s@example.test", headers=admin, json={"status": "gone"})
    assert r.status_code == 422


async def test_attribute_values_jsonb_cannot_hold_are_a_422(client, admin):
    r = await client.put(
        "/v1/contacts/n@example.test",
        headers={**admin, "Content-Type": "application/json"},
        content=b'{"attributes": {"a": "x\\u0000y", "b": 1e999}}',
    )
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"][:2] == [
        "body",
        "attributes",
    ]
