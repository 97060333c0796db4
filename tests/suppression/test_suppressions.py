"""/v1/suppressions: manual management, cursor pages, filters, normalised addresses."""

from __future__ import annotations

from sqlalchemy import text


async def test_put_get_delete(client, admin) -> None:
    r = await client.put(
        "/v1/suppressions/ Ada@Example.TEST ",
        headers=admin,
        json={"reason": "asked by phone", "scope": "marketing"},
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["email"], body["reason"], body["scope"], body["source"]) == (
        "ada@example.test",
        "asked by phone",
        "marketing",
        "manual",
    )
    assert body["created_at"]
    r = await client.get("/v1/suppressions/ADA@example.test", headers=admin)
    assert r.status_code == 200
    assert r.json()["scope"] == "marketing"
    # a person may narrow or widen a scope by hand
    r = await client.put("/v1/suppressions/ada@example.test", headers=admin, json={"scope": "all"})
    assert r.status_code == 200
    assert r.json()["scope"] == "all"
    r = await client.delete("/v1/suppressions/Ada@example.test", headers=admin)
    assert r.status_code == 204
    r = await client.get("/v1/suppressions/ada@example.test", headers=admin)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    assert (
        await client.delete("/v1/suppressions/ada@example.test", headers=admin)
    ).status_code == 404


async def test_bad_input_is_422_and_changes_nothing(client, admin, engine) -> None:
    for body in ({"scope": "some"}, {"reason": ""}, {"colour": "red"}):
        r = await client.put("/v1/suppressions/a@example.test", headers=admin, json=body)
        assert r.status_code == 422, body
    r = await client.put("/v1/suppressions/not-an-address", headers=admin, json={})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == ["path", "email"]
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM suppressions"))).scalar_one() == 0


async def test_scopes_of_keys(client, make_key) -> None:
    campaigns = {"Authorization": f"Bearer {await make_key('campaigns')}"}
    transactional = {"Authorization": f"Bearer {await make_key('transactional')}"}
    assert (await client.get("/v1/suppressions", headers=campaigns)).status_code == 200
    assert (await client.get("/v1/suppressions", headers=transactional)).status_code == 403
    assert (await client.get("/v1/suppressions")).status_code == 401


async def test_pages_and_filters(client, admin, engine) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                """INSERT INTO suppressions (email, reason, scope, source)
               SELECT 'user' || lpad(i::text, 3, '0') || '@example.test',
                      CASE WHEN i % 3 = 0 THEN 'complaint' ELSE 'permanent bounce: General' END,
                      CASE WHEN i % 3 = 0 THEN 'marketing' ELSE 'all' END,
                      CASE WHEN i % 3 = 0 THEN 'complaint' ELSE 'bounce' END
                 FROM generate_series(1, 250) AS i"""
            )
        )
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/v1/suppressions", headers=admin, params=params)).json()
        seen += [item["email"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 250 and seen == sorted(seen) and len(set(seen)) == 250
    marketing = (
        await client.get(
            "/v1/suppressions", headers=admin, params={"scope": "marketing", "limit": 1000}
        )
    ).json()["items"]
    assert len(marketing) == 83 and {i["reason"] for i in marketing} == {"complaint"}
    bounces = (
        await client.get(
            "/v1/suppressions", headers=admin, params={"reason": "permanent bounce", "limit": 1000}
        )
    ).json()
    assert len(bounces["items"]) == 167
    by_source = (
        await client.get(
            "/v1/suppressions", headers=admin, params={"source": "complaint", "limit": 1000}
        )
    ).json()
    assert len(by_source["items"]) == 83
    bad = await client.get("/v1/suppressions", headers=admin, params={"cursor": "%%%"})
    assert bad.status_code == 422
    assert (
        await client.get("/v1/suppressions", headers=admin, params={"scope": "everything"})
    ).status_code == 422
