"""POST/GET /v1/messages: validation with paths, idempotency keys, batches, scopes."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests import factories

INLINE = {
    "to": "ada@example.test",
    "from_address": "Acme <hello@mailer.test>",
    "subject": "Reset for {{ data.name }}",
    "html": "<p>Code {{ data.code }}</p>",
    "data": {"name": "Ada", "code": "123"},
}


@pytest.fixture
async def tx(make_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {await make_key('transactional')}"}


async def _count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def test_accepts_inline_message(client: httpx.AsyncClient, tx: dict[str, str]) -> None:
    r = await client.post("/v1/messages", headers=tx, json=INLINE)
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["status"] == "queued"
    got = (await client.get(f"/v1/messages/{body['id']}", headers=tx)).json()
    assert got["to"] == "ada@example.test"
    assert got["from_address"] == "Acme <hello@mailer.test>"
    assert got["mail_class"] == "transactional"
    assert got["events"] == []


async def test_accepts_stored_template(
    client: httpx.AsyncClient, admin: dict[str, str], tx: dict[str, str]
) -> None:
    # a transactional template: no `campaign` (it is checked when the message is accepted)
    template = await factories.template(client, admin, html="<p>Hi {{ data.x }}</p>")
    r = await client.post(
        "/v1/messages",
        headers=tx,
        json={
            "to": "Bob@Example.test",
            "from_address": "hello@mailer.test",
            "template_id": template["id"],
            "data": {"x": 1},
            "tags": {"kind": "receipt"},
        },
    )
    assert r.status_code == 202, r.text
    got = (await client.get(f"/v1/messages/{r.json()['id']}", headers=tx)).json()
    assert got["to"] == "bob@example.test"
    assert got["tags"] == {"kind": "receipt"}
    assert got["template_version_id"] is not None


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"to": "not-an-address"}, ["body", "to"]),
        ({"from_address": "Acme <nope>"}, ["body", "from_address"]),
        ({"reply_to": "x@"}, ["body", "reply_to"]),
        ({"mail_class": "nosuch"}, ["body", "mail_class"]),
        ({"tags": {"campaign_id": "1"}}, ["body", "tags"]),
        ({"tags": {"bad name": "x"}}, ["body", "tags"]),
        ({"headers": {"From": "evil@example.test"}}, ["body", "headers"]),
        ({"headers": {"X-Ok": "a\r\nBcc: evil@example.test"}}, ["body", "headers"]),
        ({"html": "<p>{% if %}</p>"}, ["body", "html"]),
        ({"subject": "{{ broken"}, ["body", "subject"]),
        ({"template_id": 999999}, ["body"]),
        ({"data": "not an object"}, ["body", "data"]),
        ({"unknown_field": 1}, ["body", "unknown_field"]),
    ],
)
async def test_invalid_fields_are_422_with_their_path(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    engine: AsyncEngine,
    change: dict,
    path: list[str],
) -> None:
    r = await client.post("/v1/messages", headers=tx, json={**INLINE, **change})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid"
    assert any(d["path"][: len(path)] == path for d in error["details"]), error
    assert await _count(engine, "SELECT count(*) FROM messages") == 0


async def test_missing_content_is_422(client: httpx.AsyncClient, tx: dict[str, str]) -> None:
    body = {k: v for k, v in INLINE.items() if k != "html"}
    r = await client.post("/v1/messages", headers=tx, json=body)
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == ["body"]


async def test_template_id_unknown_names_the_field(
    client: httpx.AsyncClient, tx: dict[str, str]
) -> None:
    r = await client.post(
        "/v1/messages",
        headers=tx,
        json={"to": "a@example.test", "from_address": "a@mailer.test", "template_id": 424242},
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == ["body", "template_id"]


async def test_campaigns_scope_is_refused(client: httpx.AsyncClient, make_key) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {await make_key('campaigns')}"}
    assert (await client.post("/v1/messages", headers=headers, json=INLINE)).status_code == 403
    assert (await client.post("/v1/messages", json=INLINE)).status_code == 401


async def test_same_key_same_body_is_the_same_message(
    client: httpx.AsyncClient, tx: dict[str, str], engine: AsyncEngine
) -> None:
    headers = {**tx, "Idempotency-Key": "reset-1"}
    answers = await asyncio.gather(
        *(client.post("/v1/messages", headers=headers, json=INLINE) for _ in range(20))
    )
    assert {r.status_code for r in answers} == {202}, [r.text for r in answers]
    assert len({r.json()["id"] for r in answers}) == 1
    assert await _count(engine, "SELECT count(*) FROM messages") == 1
    assert await _count(engine, "SELECT count(*) FROM idempotency_keys") == 1


async def test_same_key_other_body_is_409(
    client: httpx.AsyncClient, tx: dict[str, str], engine: AsyncEngine
) -> None:
    headers = {**tx, "Idempotency-Key": "reset-2"}
    first = await client.post("/v1/messages", headers=headers, json=INLINE)
    assert first.status_code == 202
    other = await client.post(
        "/v1/messages", headers=headers, json={**INLINE, "data": {"name": "Eve", "code": "9"}}
    )
    assert other.status_code == 409, other.text
    assert other.json()["error"]["code"] == "conflict"
    assert await _count(engine, "SELECT count(*) FROM messages") == 1


async def test_keys_belong_to_their_api_key(
    client: httpx.AsyncClient, tx: dict[str, str], make_key
) -> None:  # type: ignore[no-untyped-def]
    other = {"Authorization": f"Bearer {await make_key('transactional', name='other')}"}
    a = await client.post("/v1/messages", headers={**tx, "Idempotency-Key": "k"}, json=INLINE)
    b = await client.post(
        "/v1/messages",
        headers={**other, "Idempotency-Key": "k"},
        json={**INLINE, "to": "zed@example.test"},
    )
    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]


async def test_batch_answers_each_item(
    client: httpx.AsyncClient, tx: dict[str, str], engine: AsyncEngine
) -> None:
    items = [
        {**INLINE, "to": "one@example.test", "idempotency_key": "b-1"},
        {**INLINE, "to": "broken"},
        {**INLINE, "to": "two@example.test", "headers": {"Bcc": "x@example.test"}},
        {**INLINE, "to": "three@example.test", "idempotency_key": "b-3"},
        {**INLINE, "to": "one@example.test", "idempotency_key": "b-1"},
        {**INLINE, "to": "four@example.test", "idempotency_key": "b-1"},
    ]
    r = await client.post("/v1/messages/batch", headers=tx, json={"messages": items})
    assert r.status_code == 200, r.text
    got = r.json()["items"]
    assert [i["status_code"] for i in got] == [202, 422, 422, 202, 202, 409]
    assert got[1]["error"]["details"][0]["path"] == ["body", "messages", 1, "to"]
    assert got[2]["error"]["details"][0]["path"][:4] == ["body", "messages", 2, "headers"]
    assert got[4]["id"] == got[0]["id"]
    assert await _count(engine, "SELECT count(*) FROM messages") == 2
    again = await client.post("/v1/messages/batch", headers=tx, json={"messages": items[:1]})
    assert again.json()["items"][0]["id"] == got[0]["id"]


async def test_batch_over_100_is_422(client: httpx.AsyncClient, tx: dict[str, str]) -> None:
    r = await client.post("/v1/messages/batch", headers=tx, json={"messages": [INLINE] * 101})
    assert r.status_code == 422


async def test_list_filters_and_pages(client: httpx.AsyncClient, tx: dict[str, str]) -> None:
    for i in range(5):
        r = await client.post(
            "/v1/messages", headers=tx, json={**INLINE, "to": f"p{i % 2}@example.test"}
        )
        assert r.status_code == 202
    seen: list[int] = []
    cursor = None
    while True:
        params: dict = {"to": "P0@example.test", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/messages", headers=tx, params=params)).json()
        seen += [m["id"] for m in page["items"]]
        assert all(m["to"] == "p0@example.test" for m in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 3 and seen == sorted(seen, reverse=True)
    queued = (await client.get("/v1/messages", headers=tx, params={"status": "queued"})).json()
    assert len(queued["items"]) == 5
    bad = await client.get("/v1/messages", headers=tx, params={"status": "nope"})
    assert bad.status_code == 422
    assert (await client.get("/v1/messages", headers=tx, params={"cursor": "x"})).status_code == 422


async def test_unknown_message_is_404(client: httpx.AsyncClient, tx: dict[str, str]) -> None:
    assert (await client.get("/v1/messages/12345", headers=tx)).status_code == 404


async def test_campaign_display_names(client: httpx.AsyncClient, admin: dict[str, str]) -> None:
    campaign = await factories.campaign(
        client,
        admin,
        from_address="Acme News <News@Acme.test>",
        reply_to='"Acme, Support" <help@acme.test>',
    )
    assert campaign["from_address"] == "Acme News <news@acme.test>"
    assert campaign["reply_to"] == '"Acme, Support" <help@acme.test>'
    template = await factories.template(client, admin)
    segment = await factories.segment(client, admin)
    r = await client.post(
        "/v1/campaigns",
        headers=admin,
        json={
            "name": "x",
            "template_id": template["id"],
            "segment_id": segment["id"],
            "from_address": "Acme <not-an-address>",
        },
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == ["body", "from_address"]
