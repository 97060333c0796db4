"""Typed CSV columns (issue 19): ``age:number`` stores numbers, so the same filter matches a
contact whether it came from the API or a file; a bad typed value rejects its row only."""

from __future__ import annotations

import json

from tests.contact.test_imports import contact, run

FILE = (
    "email,age:number,vip:boolean,joined:date,zip:string,zip_untyped,city\n"
    "a@example.test,35,yes,2026-01-02,007,007,Paris\n"
    "b@example.test,19.5,FALSE,,0420,0420,Rome\n"
    "c@example.test,thirty,true,2026-01-02,1,1,Oslo\n"
    "d@example.test,40,maybe,2026-01-02,1,1,Oslo\n"
    "e@example.test,41,1,2026-02-30,1,1,Oslo\n"
    "f@example.test,,0,2025-12-31,,,\n"
)


async def _matching(client, admin, tree: dict) -> list[str]:  # type: ignore[no-untyped-def]
    r = await client.get(
        "/v1/contacts", headers=admin, params={"filter": json.dumps(tree), "limit": 100}
    )
    assert r.status_code == 200, r.text
    return sorted(c["email"] for c in r.json()["items"])


async def test_typed_columns_are_stored_typed_and_bad_values_reject_their_rows(
    client, admin, sessionmaker
):
    report = await run(client, admin, sessionmaker, FILE)
    assert report["rejected"] == 3, report
    reasons = {e["row"]: e["reason"] for e in report["errors"]}
    assert reasons == {
        4: "age: 'thirty' is not a number",
        5: "vip: 'maybe' is not a boolean",
        6: "joined: '2026-02-30' is not a date",
    }
    a = await contact(client, admin, "a@example.test")
    assert a["attributes"] == {
        "age": 35,
        "vip": True,
        "joined": "2026-01-02",
        "zip": "007",
        "zip_untyped": "007",
        "city": "Paris",
    }
    b = await contact(client, admin, "b@example.test")
    assert b["attributes"]["age"] == 19.5 and b["attributes"]["vip"] is False
    assert "joined" not in b["attributes"]  # an empty cell sets nothing
    f = await contact(client, admin, "f@example.test")
    assert f["attributes"] == {"vip": False, "joined": "2025-12-31"}


async def test_the_same_filter_matches_imported_and_api_contacts(client, admin, sessionmaker):
    r = await client.put(
        "/v1/contacts/api@example.test",
        headers=admin,
        json={"attributes": {"age": 100, "vip": True}},
    )
    assert r.status_code == 201
    await run(client, admin, sessionmaker, FILE)
    older = {"field": "attributes.age", "op": "gt", "value": 30}
    # numbers compare as numbers: 100 > 30 (as text "100" < "30")
    assert await _matching(client, admin, older) == ["a@example.test", "api@example.test"]
    vips = {"field": "attributes.vip", "op": "eq", "value": True}
    assert await _matching(client, admin, vips) == ["a@example.test", "api@example.test"]
    since = {"field": "attributes.joined", "op": "gte", "value": "2026-01-01"}
    assert await _matching(client, admin, since) == ["a@example.test"]


async def test_an_untyped_file_keeps_text_as_before(client, admin, sessionmaker):
    await run(client, admin, sessionmaker, "email,age\nx@example.test,35\n")
    assert (await contact(client, admin, "x@example.test"))["attributes"] == {"age": "35"}


async def test_a_column_typed_twice_under_one_name_is_refused(client, admin):
    r = await client.post(
        "/v1/contacts/imports",
        headers={**admin, "Content-Type": "text/csv"},
        content=b"email,age,age:number\nx@example.test,1,2\n",
    )
    assert r.status_code == 422 and "appears twice" in r.json()["error"]["message"]
