"""Segments over HTTP: create, list, read, replace, count, preview; bad filters."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mailer.audience.filters import MAX_DEPTH, MAX_NODES
from mailer.campaign import audience_fixup
from mailer.db import transaction
from tests import factories


async def _count(engine, sql: str) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


def _deep(levels: int) -> dict:
    tree: dict = {"field": "tags", "op": "exists"}
    for _ in range(levels):
        tree = {"not": tree}
    return tree


C = {"field": "email", "op": "eq", "value": "a@b.test"}
BAD_FILTERS = [
    # (filter, path in details, words of the message)
    ({"field": "phone", "op": "eq", "value": "1"}, ["filter", "field"], "unknown field"),
    ({"field": "attributes.", "op": "eq", "value": "1"}, ["filter", "field"], "unknown field"),
    ({"field": 7, "op": "eq", "value": "1"}, ["filter", "field"], "expected a string"),
    ({"field": "email", "op": "like", "value": "a"}, ["filter", "op"], "unknown operator"),
    ({"field": "email", "op": "eq"}, ["filter", "value"], "value is required"),
    ({"field": "email", "op": "eq", "value": 3}, ["filter", "value"], "expected a string"),
    ({"field": "tags", "op": "in", "value": []}, ["filter", "value"], "non-empty list"),
    ({"field": "tags", "op": "in", "value": ["a", 1]}, ["filter", "value", 1], "expected tags"),
    ({"field": "tags", "op": "gt", "value": "a"}, ["filter", "op"], "does not apply to tags"),
    (
        {"field": "created_at", "op": "contains", "value": "2026"},
        ["filter", "op"],
        "does not apply to created_at",
    ),
    ({"field": "created_at", "op": "gt", "value": "yesterday"}, ["filter", "value"], "ISO 8601"),
    (
        {"field": "created_at", "op": "in", "value": ["2026-01-01", "soon"]},
        ["filter", "value", 1],
        "ISO 8601",
    ),
    (
        {"field": "attributes.n", "op": "gt", "value": True},
        ["filter", "value"],
        "number or a string",
    ),
    (
        {"field": "attributes.n", "op": "contains", "value": 1},
        ["filter", "value"],
        "expected a string",
    ),
    (
        {"field": "attributes.n", "op": "exists", "value": "yes"},
        ["filter", "value"],
        "true or false",
    ),
    # NUL is refused by the JSON guard before any endpoint: its paths start at the body
    ({"field": "email", "op": "eq", "value": "a\x00b"}, ["body", "filter", "value"], "NUL"),
    ({"field": "attributes.a\x00", "op": "exists"}, ["body", "filter", "field"], "NUL"),
    ({"field": "email", "op": "in", "value": ["x"] * 10_001}, ["filter", "value"], "at most"),
    ({"field": "email", "op": "eq", "value": "a", "extra": 1}, ["filter"], "expected {all"),
    ({"all": [C, {"any": [C, "nope"]}]}, ["filter", "all", 1, "any", 1], "expected an object"),
    ({"any": {"field": "email"}}, ["filter", "any"], "expected a list"),
    ({"all": [C], "any": [C]}, ["filter"], "expected {all"),
    (
        {"not": {"all": [{"field": "x", "op": "eq", "value": 1}]}},
        ["filter", "not", "all", 0, "field"],
        "unknown field",
    ),
    (_deep(MAX_DEPTH + 1), ["filter", *["not"] * (MAX_DEPTH + 1)], "too deep"),
    ({"any": [C] * MAX_NODES}, ["filter", "any", MAX_NODES - 1], "too large"),
]


@pytest.mark.parametrize(("tree", "path", "says"), BAD_FILTERS)
async def test_a_bad_filter_is_a_422_naming_its_path(client, admin, engine, tree, path, says):
    for url, body in (
        ("/v1/segments", {"name": "bad", "filter": tree}),
        ("/v1/segments/preview", {"filter": tree}),
    ):
        r = await client.post(url, headers=admin, json=body)
        assert r.status_code == 422, r.text
        error = r.json()["error"]
        assert error["code"] == "invalid" and says in error["message"], error["message"]
        assert error["details"][0]["path"] == path
    assert await _count(engine, "SELECT count(*) FROM segments") == 0


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "s", "filter": {"field": "attributes.n", "op": "gt", "value": 1e999}}',
        b'{"name": "s", "filter": {"field": "email", "op": "eq", "value": "\\ud800"}}',
    ],
)
async def test_values_postgresql_cannot_hold_are_a_422(client, admin, engine, raw):
    r = await client.post(
        "/v1/segments", headers={**admin, "Content-Type": "application/json"}, content=raw
    )
    assert r.status_code == 422, r.text
    # the JSON guard refuses these before any endpoint, naming the body
    assert r.json()["error"]["details"][0]["path"][0] == "body"
    assert await _count(engine, "SELECT count(*) FROM segments") == 0


async def test_a_filter_that_is_not_an_object_is_a_422(client, admin):
    r = await client.post("/v1/segments", headers=admin, json={"name": "s", "filter": []})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"][-1] == "filter"


async def test_segments_are_listed_read_and_replaced(client, admin):
    ids = []
    for i in range(5):
        r = await client.post(
            "/v1/segments", headers=admin, json={"name": f"s{i}", "filter": {"all": []}}
        )
        ids.append(r.json()["id"])
    seen, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/segments", headers=admin, params=params)).json()
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == ids
    r = await client.get("/v1/segments", headers=admin, params={"cursor": "x'"})
    assert r.status_code == 422 and r.json()["error"]["details"][0]["path"] == ["query", "cursor"]

    tree = {"field": "tags", "op": "contains", "value": "vip"}
    r = await client.put(
        f"/v1/segments/{ids[0]}", headers=admin, json={"name": "VIPs", "filter": tree}
    )
    assert r.status_code == 200 and r.json()["filter"] == tree
    got = (await client.get(f"/v1/segments/{ids[0]}", headers=admin)).json()
    assert (got["name"], got["filter"]) == ("VIPs", tree)
    r = await client.put(
        f"/v1/segments/{ids[0]}",
        headers=admin,
        json={"name": "x", "filter": {"field": "tags", "op": "gt", "value": 1}},
    )
    assert r.status_code == 422
    assert (await client.get(f"/v1/segments/{ids[0]}", headers=admin)).json()["name"] == "VIPs"
    for method in ("get", "put"):
        r = await client.request(
            method, "/v1/segments/999", headers=admin, json={"name": "x", "filter": {"all": []}}
        )
        assert r.status_code == 404


async def test_count_and_preview_leave_out_unsubscribed_and_suppressed(client, admin, sessionmaker):
    for email, tags in (
        ("a@x.test", ["vip"]),
        ("b@x.test", ["vip"]),
        ("c@x.test", ["vip"]),
        ("d@x.test", []),
    ):
        await client.put(f"/v1/contacts/{email}", headers=admin, json={"tags": tags})
    async with transaction(sessionmaker) as session:
        await session.execute(
            text("UPDATE contacts SET status = 'unsubscribed' WHERE email = 'b@x.test'")
        )
        await session.execute(
            text("INSERT INTO suppressions (email, reason) VALUES ('c@x.test', 'bounce')")
        )
    tree = {"field": "tags", "op": "contains", "value": "vip"}
    segment = await factories.segment(client, admin, tree)
    r = await client.get(f"/v1/segments/{segment['id']}/count", headers=admin)
    assert r.json() == {"matching": 3, "eligible": 1}
    r = await client.post("/v1/segments/preview", headers=admin, json={"filter": tree})
    assert r.json() == {"matching": 3, "eligible": 1, "sample": ["a@x.test"]}


async def test_a_campaign_keeps_the_audience_it_fixed(client, admin, sessionmaker):
    for email, tags in (("in@x.test", ["vip"]), ("out@x.test", [])):
        await client.put(f"/v1/contacts/{email}", headers=admin, json={"tags": tags})
    segment = await factories.segment(
        client, admin, {"field": "tags", "op": "contains", "value": "vip"}
    )
    campaign = await factories.campaign(client, admin, segment_id=segment["id"])
    assert (
        await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
    ).status_code == 202
    async with transaction(sessionmaker) as session:
        assert await audience_fixup.fix_audience(session, campaign["id"]) is not None
    r = await client.put(
        f"/v1/segments/{segment['id']}", headers=admin, json={"name": "all", "filter": {"all": []}}
    )
    assert r.status_code == 200
    async with transaction(sessionmaker) as session:
        await audience_fixup.fix_audience(session, campaign["id"])  # again: a no-op
    messages = await factories.all_messages(client, admin, campaign["id"])
    assert [m["email"] for m in messages] == ["in@x.test"]
    r = await client.get(f"/v1/segments/{segment['id']}/count", headers=admin)
    assert r.json()["matching"] == 2
