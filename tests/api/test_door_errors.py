"""Errors that say what to do (issue 19): a JSON body sent as a form, pydantic's prefixes."""

from __future__ import annotations


async def test_a_json_route_sent_form_data_says_to_send_json(client, admin):
    # curl -d '{"attributes": {}}' sends application/x-www-form-urlencoded
    r = await client.put(
        "/v1/contacts/ada@example.test",
        headers={**admin, "Content-Type": "application/x-www-form-urlencoded"},
        content=b'{"attributes": {"first_name": "Ada"}}',
    )
    assert r.status_code == 415, r.text
    error = r.json()["error"]
    assert error["code"] == "unsupported_media_type"
    assert "Content-Type: application/json" in error["message"]
    assert "x-www-form-urlencoded" in error["message"]
    assert (await client.get("/v1/contacts/ada@example.test", headers=admin)).status_code == 404


async def test_no_content_type_at_all_is_answered_the_same(client, admin):
    r = await client.post(
        "/v1/segments", headers=admin, content=b'{"name": "x", "filter": {"all": []}}'
    )
    assert r.status_code == 415 and "application/json" in r.json()["error"]["message"]


async def test_json_with_a_bad_field_stays_a_422_naming_it(client, admin):
    r = await client.post("/v1/segments", headers=admin, json={"name": "x", "filter": 5})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"][:2] == ["body", "filter"]


async def test_messages_carry_no_library_prefix(client, make_key):
    tx = {"Authorization": f"Bearer {await make_key('transactional')}"}
    r = await client.post(
        "/v1/messages",
        headers=tx,
        json={
            "to": "a@example.test",
            "from_address": "x@mailer.test",
            "subject": "s",
            "html": "h",
            "headers": {"Bad Name": "x"},
        },
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert "not a header name" in error["message"]
    assert "Value error" not in error["message"]
    assert all("Value error" not in d["message"] for d in error["details"])


async def test_the_batch_route_says_idempotency_keys_go_per_item(client, make_key):
    tx = {"Authorization": f"Bearer {await make_key('transactional')}"}
    item = {"to": "a@example.test", "from_address": "x@mailer.test", "subject": "s", "html": "h"}
    r = await client.post(
        "/v1/messages/batch",
        headers={**tx, "Idempotency-Key": "k1"},
        json={"messages": [item]},
    )
    assert r.status_code == 422, r.text
    assert "idempotency_key" in r.json()["error"]["message"]
    assert r.json()["error"]["details"][0]["path"] == ["header", "Idempotency-Key"]
    listed = await client.get("/v1/messages", headers=tx)
    assert listed.json()["items"] == []  # nothing was accepted
