"""Addresses and tags valid for SES at the door: IDN domains in Punycode, no UTF-8 local
part, SES's tag pattern; an encoding problem is never a transient retry."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mailer.contact.addresses import normalise, valid_address, valid_mailbox
from mailer.errors import Invalid
from mailer.sending.transport import ErrorKind, classify
from tests.contact.test_imports import run as run_import
from tests.message.test_send import INLINE, wait_final


@pytest.fixture
async def tx(make_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {await make_key('transactional')}"}


def test_domains_are_normalised_to_punycode() -> None:
    assert valid_address(" Ada@Bücher.Example ") == "ada@xn--bcher-kva.example"
    assert normalise("ada@BÜCHER.example") == "ada@xn--bcher-kva.example"
    assert valid_mailbox("Bücher <News@bücher.example>") == "Bücher <news@xn--bcher-kva.example>"
    # the ASCII form given directly is the same address
    assert valid_address("ada@xn--bcher-kva.example") == "ada@xn--bcher-kva.example"


def test_a_utf8_local_part_is_refused() -> None:
    with pytest.raises(Invalid) as caught:
        valid_address("jörg@example.com", ["body", "to"])
    assert "SMTPUTF8" in caught.value.message
    assert caught.value.details[0]["path"] == ["body", "to"]


def test_encoding_errors_are_permanent_not_transient() -> None:
    error = classify(UnicodeEncodeError("ascii", "bücher", 1, 2, "ordinal not in range"))
    assert error.kind is ErrorKind.PERMANENT


async def test_idn_addresses_are_sent_in_punycode(client, tx, clean_standin, start_worker):
    start_worker()
    body = {**INLINE, "to": "Ada@Bücher.example", "from_address": "Büro <hello@bücher.test>"}
    r = await client.post("/v1/messages", headers=tx, json=body)
    assert r.status_code == 202, r.text
    done = await wait_final(client, tx, r.json()["id"], timeout=120)
    assert done["status"] == "sent", done
    assert done["to"] == "ada@xn--bcher-kva.example"
    (call,) = clean_standin.control.messages()
    assert call["Destination"]["ToAddresses"] == ["ada@xn--bcher-kva.example"]
    assert call["FromEmailAddress"].endswith("<hello@xn--bcher-kva.test>")
    assert call["FromEmailAddress"].isascii()


async def test_a_utf8_local_part_and_a_bad_tag_are_refused_and_never_queued(
    client, tx, admin, engine
):
    r = await client.post("/v1/messages", headers=tx, json={**INLINE, "to": "jörg@example.test"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["path"][-1] == "to"
    for value in ("a.b", "user@example", "ü", "x" * 257):
        r = await client.post("/v1/messages", headers=tx, json={**INLINE, "tags": {"k": value}})
        assert r.status_code == 422, (value, r.text)
        assert "tags" in r.json()["error"]["details"][0]["path"]
    r = await client.post("/v1/messages", headers=tx, json={**INLINE, "tags": {"a.b": "v"}})
    assert r.status_code == 422, r.text
    r = await client.put("/v1/contacts/jörg@example.test", headers=admin, json={})
    assert r.status_code == 422, r.text
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM messages"))).scalar_one() == 0
        assert (await conn.execute(text("SELECT count(*) FROM contacts"))).scalar_one() == 0
    # a good tag still passes
    r = await client.post("/v1/messages", headers=tx, json={**INLINE, "tags": {"k": "v_1-2"}})
    assert r.status_code == 202, r.text


async def test_imports_store_punycode_and_reject_utf8_local_parts(client, admin, sessionmaker):
    csv = "email,name\nAda@Bücher.example,Ada\njörg@example.test,Jörg\nbob@example.test,Bob\n"
    done = await run_import(client, admin, sessionmaker, csv)
    assert (done["created"], done["rejected"]) == (2, 1), done
    assert done["errors"][0]["row"] == 3 and "SMTPUTF8" in done["errors"][0]["reason"]
    r = await client.get("/v1/contacts/ada@xn--bcher-kva.example", headers=admin)
    assert r.status_code == 200, r.text
    # looked up by its Unicode form, the same contact
    r = await client.get("/v1/contacts/ada@bücher.example", headers=admin)
    assert r.status_code == 200 and r.json()["email"] == "ada@xn--bcher-kva.example"
