"""``GET /v1/keys`` and ``DELETE /v1/keys/{id}`` (admin): keys listed by id, cursor-paginated,
never the key; revoking refuses the key at once and ends its dashboard sessions."""

from __future__ import annotations

from sqlalchemy import text


async def test_keys_are_listed_page_by_page_without_the_keys(
    client, admin, admin_key, make_key
) -> None:  # type: ignore[no-untyped-def]
    raws = [await make_key("campaigns", name=f"k{i}") for i in range(3)]
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        r = await client.get("/v1/keys", headers=admin, params=params)
        assert r.status_code == 200
        for secret in [admin_key, *raws]:
            # mk_<prefix>_<secret>: the secret is base64url and may hold "_" itself
            assert secret not in r.text and secret.split("_", 2)[2] not in r.text
        assert "key_hash" not in r.text
        seen += r.json()["items"]
        if (cursor := r.json()["next_cursor"]) is None:
            break
    assert [k["name"] for k in seen] == ["admin", "k0", "k1", "k2"]
    assert seen[1]["scopes"] == ["campaigns"] and seen[1]["revoked_at"] is None
    assert raws[0].startswith(f"mk_{seen[1]['prefix']}_")
    assert (await client.get("/v1/keys", headers=admin, params={"cursor": "x"})).status_code == 422


async def test_only_admin_keys_see_and_revoke_keys(client, make_key) -> None:  # type: ignore[no-untyped-def]
    other = {"Authorization": f"Bearer {await make_key('campaigns', 'reputation')}"}
    assert (await client.get("/v1/keys", headers=other)).status_code == 403
    assert (await client.delete("/v1/keys/1", headers=other)).status_code == 403
    assert (await client.get("/v1/keys")).status_code == 401


async def test_a_revoked_key_is_refused_at_once(client, admin, make_key, engine) -> None:  # type: ignore[no-untyped-def]
    raw = await make_key("campaigns", name="gone")
    headers = {"Authorization": f"Bearer {raw}"}
    assert (await client.get("/v1/segments", headers=headers)).status_code == 200
    async with engine.connect() as conn:
        key_id = (await conn.execute(text("SELECT id FROM api_keys WHERE name = 'gone'"))).scalar()

    assert (await client.delete(f"/v1/keys/{key_id}", headers=admin)).status_code == 204
    assert (await client.get("/v1/segments", headers=headers)).status_code == 401
    listed = (await client.get("/v1/keys", headers=admin)).json()["items"]
    assert [k["revoked_at"] is not None for k in listed if k["id"] == key_id] == [True]
    # again: nothing changes; an unknown id is a 404
    assert (await client.delete(f"/v1/keys/{key_id}", headers=admin)).status_code == 204
    r = await client.delete("/v1/keys/999999", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_a_key_cannot_revoke_itself(client, admin) -> None:  # type: ignore[no-untyped-def]
    own = (await client.get("/v1/keys", headers=admin)).json()["items"][0]["id"]
    r = await client.delete(f"/v1/keys/{own}", headers=admin)
    assert r.status_code == 409 and "mailer keys revoke" in r.json()["error"]["message"]
    assert (await client.get("/v1/keys", headers=admin)).status_code == 200
