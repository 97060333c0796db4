"""PATCH merges into a contact; PUT replaces it (issue 19: a status change lost the data)."""

from __future__ import annotations

from sqlalchemy import text

CONTACT = "/v1/contacts/ada@example.test"


async def _ada(client, admin) -> None:  # type: ignore[no-untyped-def]
    r = await client.put(
        CONTACT,
        headers=admin,
        json={"attributes": {"first_name": "Ada", "age": 36, "plan": "free"}, "tags": ["a", "b"]},
    )
    assert r.status_code == 201, r.text


async def test_a_status_change_by_patch_keeps_attributes_and_tags(client, admin, engine):
    await _ada(client, admin)
    r = await client.patch(CONTACT, headers=admin, json={"status": "unsubscribed"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "unsubscribed"
    assert body["attributes"] == {"first_name": "Ada", "age": 36, "plan": "free"}
    assert body["tags"] == ["a", "b"]
    async with engine.connect() as conn:
        sources = (
            await conn.execute(text("SELECT source, status FROM contact_status_changes"))
        ).all()
    assert [(s.source, s.status) for s in sources] == [("api", "unsubscribed")]


async def test_patch_merges_attributes_null_removes_a_key_and_tags_move_one_by_one(client, admin):
    await _ada(client, admin)
    r = await client.patch(
        CONTACT,
        headers=admin,
        json={
            "attributes": {"plan": "pro", "age": None, "city": "London"},
            "tags_add": ["c", "a", " "],
            "tags_remove": ["b", "not-there"],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["attributes"] == {"first_name": "Ada", "plan": "pro", "city": "London"}
    assert body["tags"] == ["a", "c"]
    assert body["status"] == "subscribed"
    # nothing given: nothing changes
    again = await client.patch(CONTACT, headers=admin, json={})
    assert again.status_code == 200
    assert again.json()["attributes"] == body["attributes"] and again.json()["tags"] == ["a", "c"]


async def test_put_is_a_full_replacement(client, admin):
    await _ada(client, admin)
    r = await client.put(CONTACT, headers=admin, json={"attributes": {"plan": "pro"}})
    assert r.status_code == 200
    assert r.json()["attributes"] == {"plan": "pro"} and r.json()["tags"] == []


async def test_patch_of_an_unknown_contact_is_a_404_and_creates_nothing(client, admin):
    r = await client.patch(CONTACT, headers=admin, json={"attributes": {"x": 1}})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert "PUT" in r.json()["error"]["message"]
    assert (await client.get(CONTACT, headers=admin)).status_code == 404


async def test_bad_patches_are_422s_that_change_nothing(client, admin):
    await _ada(client, admin)
    for body in (
        {"tags": ["x"]},  # PUT's field: the PATCH names add and remove
        {"attributes": ["x"]},
        {"status": "bounced"},
        {"attributes": {"k": "a\u0000b"}},
    ):
        r = await client.patch(CONTACT, headers=admin, json=body)
        assert r.status_code == 422, (body, r.text)
        assert "error" in r.json()
    r = await client.patch("/v1/contacts/not-an-address", headers=admin, json={})
    assert r.status_code == 422
    after = (await client.get(CONTACT, headers=admin)).json()
    assert after["attributes"] == {"first_name": "Ada", "age": 36, "plan": "free"}
    assert after["tags"] == ["a", "b"]
