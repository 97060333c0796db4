"""DELETE /v1/contacts/{email}: the address is left nowhere but the suppression
list; the erasure is recorded without it."""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.campaign import audience_fixup
from mailer.contact import import_merge, service
from mailer.db import transaction
from mailer.secrets import new_key, verifying_keys
from tests import factories

ADDRESS = "gone.person@example.test"


async def tables_holding(engine: AsyncEngine, needle: str) -> dict[str, int]:
    """Every table and column of text, jsonb or array type whose values contain ``needle``
    (case-insensitive): {"table.column": rows}."""
    found: dict[str, int] = {}
    async with engine.connect() as conn:
        columns = (
            await conn.execute(
                text(
                    "SELECT table_name, column_name FROM information_schema.columns"
                    " WHERE table_schema = 'public' AND data_type IN"
                    " ('text', 'character varying', 'jsonb', 'json', 'ARRAY', 'bytea')"
                )
            )
        ).all()
        for table, column in columns:
            n = (
                await conn.execute(
                    text(
                        f'SELECT count(*) FROM "{table}"'
                        f' WHERE strpos(lower("{column}"::text), :n) > 0'
                    ),
                    {"n": needle.lower()},
                )
            ).scalar_one()
            if n:
                found[f"{table}.{column}"] = int(n)
    return found


async def seed_everywhere(client, admin, sessionmaker) -> int:  # type: ignore[no-untyped-def]
    """The address in a contact, a campaign message, events, an SNS notification, an import
    report and the suppression list; one other contact alongside. The campaign id."""
    for email in (ADDRESS, "stays@example.test"):
        r = await client.put(
            f"/v1/contacts/{email}",
            headers=admin,
            json={
                "attributes": {"first_name": "Gone", "note": f"reach me at {email}"},
                "tags": ["vip"],
                "status": "unsubscribed",
            },
        )
        assert r.status_code == 201
    await client.put(
        f"/v1/contacts/{ADDRESS}",
        headers=admin,
        json={"attributes": {}, "tags": ["vip"], "status": "subscribed"},
    )
    csv = f"email,name\n{ADDRESS},A\n{ADDRESS.upper()},B\n".encode()
    r = await client.post(
        "/v1/contacts/imports", headers={**admin, "Content-Type": "text/csv"}, content=csv
    )
    assert await import_merge.run_import(sessionmaker, r.json()["id"]) == "completed"
    segment = await factories.segment(client, admin)
    campaign = await factories.campaign(client, admin, segment_id=segment["id"])
    await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
    async with transaction(sessionmaker) as session:
        await audience_fixup.fix_audience(session, campaign["id"])
        body = {"notificationType": "Bounce", "mail": {"destination": [ADDRESS.upper()]}}
        await session.execute(
            text(
                "INSERT INTO sns_notifications (sns_message_id, topic_arn, type, body)"
                " VALUES ('n1', 'arn:aws:sns:us-east-1:1:t', 'Notification', CAST(:b AS jsonb))"
            ),
            {"b": json.dumps(body)},
        )
        await session.execute(
            text(
                "INSERT INTO events (message_id, campaign_id, email, type, occurred_at, data,"
                "                    dedup_key)"
                " SELECT id, campaign_id, email, 'bounce', now(), jsonb_build_object('to', email),"
                "        'test-bounce:' || id"
                "   FROM messages"
            )
        )
        await session.execute(
            text(
                "UPDATE messages SET error = 'rejected: ' || upper(email),"
                " subject = 'Hi ' || email,"
                " data = jsonb_build_object('email', email)"
            )
        )
        await session.execute(
            text(
                "INSERT INTO suppressions (email, reason, scope, source)"
                " VALUES (:e, 'hard bounce', 'all', 'bounce')"
            ),
            {"e": ADDRESS},
        )
    return int(campaign["id"])


async def test_after_delete_the_address_is_only_on_the_suppression_list(
    client, admin, sessionmaker, engine, settings
):
    campaign_id = await seed_everywhere(client, admin, sessionmaker)
    before = await tables_holding(engine, ADDRESS)
    assert {
        "contacts.email",
        "messages.email",
        "events.email",
        "events.data",
        "sns_notifications.body",
        "contact_imports.errors",
        "suppressions.email",
    } <= set(before), before

    r = await client.delete(f"/v1/contacts/{ADDRESS.upper()}", headers=admin)
    assert r.status_code == 200, r.text
    assert r.json() == {"email_erased": True, "messages": 1, "events": 1, "suppressed": True}

    assert await tables_holding(engine, ADDRESS) == {"suppressions.email": 1}
    assert await tables_holding(engine, "gone.person") == {"suppressions.email": 1}
    r = await client.get(f"/v1/contacts/{ADDRESS}", headers=admin)
    assert r.status_code == 404
    async with engine.connect() as conn:
        kept = (await conn.execute(text("SELECT reason, scope FROM suppressions"))).all()
        erasures = (
            await conn.execute(
                text("SELECT address_hmac, messages, events, suppressed FROM contact_erasures")
            )
        ).all()
        changes = (await conn.execute(text("SELECT count(*) FROM contact_status_changes"))).one()
        stats = (
            await conn.execute(
                text("SELECT recipients FROM campaign_stats WHERE campaign_id = :c"),
                {"c": campaign_id},
            )
        ).scalar_one()
    assert kept == [("hard bounce", "all")]
    assert erasures == [(service.address_hmac(settings.secret_key, ADDRESS), 1, 1, True)]
    assert changes == (1,)  # only the other contact's record remains
    assert stats == 1  # the campaign's numbers stay

    other = (await client.get("/v1/contacts/stays@example.test", headers=admin)).json()
    assert other["attributes"]["note"] == "reach me at stays@example.test"
    assert await tables_holding(engine, "stays@example.test")


async def test_deleting_an_unknown_address_is_a_404(client, admin, engine):
    r = await client.delete("/v1/contacts/nobody@example.test", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM contact_erasures"))).scalar() == 0


async def test_an_erasure_is_found_across_a_key_rotation(client, admin, sessionmaker, settings):
    await seed_everywhere(client, admin, sessionmaker)
    assert (await client.delete(f"/v1/contacts/{ADDRESS}", headers=admin)).status_code == 200
    new = new_key()
    rotated = settings.model_copy(update={"secret_keys": [new, settings.secret_key]})
    async with sessionmaker() as session:
        assert await service.was_erased(session, verifying_keys(rotated), ADDRESS.upper())
        assert not await service.was_erased(session, [new], ADDRESS)
        assert not await service.was_erased(session, verifying_keys(rotated), "other@x.test")
