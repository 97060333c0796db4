"""/unsubscribe/{token}: a page with a button, and RFC 8058 one-click POSTs without login."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mailer.secrets import new_key, signing_key
from mailer.suppression.tokens import make_token, read_token
from tests.fixtures.api import api_client
from tests.webhook.conftest import seed_sent, snapshot, stats

EMAIL = "reader@example.test"


async def _seeded(client, admin, engine, settings) -> tuple[int, str, int]:  # type: ignore[no-untyped-def]
    campaign_id, _ = await seed_sent(client, admin, engine, [EMAIL])
    async with engine.connect() as conn:
        message_id = (
            await conn.execute(text("SELECT id FROM messages WHERE email = :e"), {"e": EMAIL})
        ).scalar_one()
    return campaign_id, make_token(settings.secret_key, message_id), message_id


def test_token_carries_no_personal_data_and_cannot_be_forged() -> None:
    token = make_token("secret", 12345)
    assert "@" not in token and "reader" not in token
    assert read_token("secret", token) == 12345
    assert read_token("other secret", token) is None
    head, _, mac = token.partition(".")
    assert read_token("secret", f"{int(head, 16) + 1:x}.{mac}") is None
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    assert read_token("secret", f"{head}.{flipped}") is None
    assert read_token("secret", head) is None
    assert read_token("secret", "zz." + mac) is None


async def test_page_shows_a_button_and_changes_nothing(client, admin, engine, settings) -> None:
    _, token, _ = await _seeded(client, admin, engine, settings)
    before = await snapshot(engine)
    r = await client.get(f"/unsubscribe/{token}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert f'action="/unsubscribe/{token}"' in r.text and "<button" in r.text
    assert EMAIL not in r.text
    assert await snapshot(engine) == before


@pytest.mark.parametrize("content_type", ["urlencoded", "multipart"])
async def test_one_click_post_unsubscribes_without_credentials(
    client, admin, engine, settings, content_type
) -> None:
    campaign_id, token, message_id = await _seeded(client, admin, engine, settings)
    if content_type == "urlencoded":
        r = await client.post(
            f"/unsubscribe/{token}",
            content="List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
    else:
        r = await client.post(
            f"/unsubscribe/{token}", files={"List-Unsubscribe": (None, "One-Click")}
        )
        assert r.request.headers["content-type"].startswith("multipart/form-data")
    assert r.status_code == 200, r.text
    assert "unsubscribed" in r.text
    contact = (await client.get(f"/v1/contacts/{EMAIL}", headers=admin)).json()
    assert contact["status"] == "unsubscribed"
    suppression = (await client.get(f"/v1/suppressions/{EMAIL}", headers=admin)).json()
    assert (suppression["scope"], suppression["source"]) == ("marketing", "unsubscribe")
    assert (await stats(client, admin, campaign_id))["unsubscribed"] == 1
    async with engine.connect() as conn:
        events = (await conn.execute(text("SELECT type, subtype, message_id FROM events"))).all()
    assert [tuple(e) for e in events] == [("unsubscribe", "one_click", message_id)]
    async with engine.connect() as conn:
        changes = (
            await conn.execute(text("SELECT status, source FROM contact_status_changes"))
        ).all()
    assert [tuple(c) for c in changes] == [("unsubscribed", "unsubscribe_link")]

    # repeating it is harmless: same page, nothing counted twice
    before = await snapshot(engine)
    again = await client.post(
        f"/unsubscribe/{token}",
        content="List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert again.status_code == 200
    assert await snapshot(engine) == before


async def test_unsubscribe_keeps_a_wider_suppression(client, admin, engine, settings) -> None:
    _, token, _ = await _seeded(client, admin, engine, settings)
    await client.put(f"/v1/suppressions/{EMAIL}", headers=admin, json={"scope": "all"})
    assert (await client.post(f"/unsubscribe/{token}")).status_code == 200
    assert (await client.get(f"/v1/suppressions/{EMAIL}", headers=admin)).json()["scope"] == "all"


@pytest.mark.parametrize("kind", ["tampered", "unknown message", "garbage", "long"])
async def test_bad_token_is_404_and_changes_nothing(client, admin, engine, settings, kind) -> None:
    _, token, message_id = await _seeded(client, admin, engine, settings)
    head, _, mac = token.partition(".")
    bad = {
        "tampered": f"{message_id + 1:x}.{mac}",
        "unknown message": make_token(settings.secret_key, message_id + 1000),
        "garbage": "hello",
        "long": "f" * 300 + "." + mac,
    }[kind]
    before = await snapshot(engine)
    for method in ("GET", "POST"):
        r = await client.request(
            method,
            f"/unsubscribe/{bad}",
            content="List-Unsubscribe=One-Click",
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 404, (method, r.text)
        # a page a person can read, not a JSON error (issue 21)
        assert r.headers["content-type"].startswith("text/html")
        assert "This link is not recognised" in r.text
    assert await snapshot(engine) == before


async def test_links_survive_a_key_rotation_until_the_key_is_removed(  # type: ignore[no-untyped-def]
    client, admin, engine, settings, redis
) -> None:
    _, token, message_id = await _seeded(client, admin, engine, settings)
    new = new_key()
    rotated = settings.model_copy(update={"secret_keys": [new, settings.secret_key]})
    removed = settings.model_copy(update={"secret_keys": [new], "secret_key": ""})
    # links made after the rotation are signed with the new key
    fresh = make_token(signing_key(rotated), message_id)
    assert fresh != token

    async with api_client(rotated) as c:
        assert (await c.get(f"/unsubscribe/{token}")).status_code == 200
        assert (await c.get(f"/unsubscribe/{fresh}")).status_code == 200
    async with api_client(removed) as c:
        assert (await c.get(f"/unsubscribe/{token}")).status_code == 404
        assert (await c.post(f"/unsubscribe/{token}")).status_code == 404
        assert (await c.get(f"/unsubscribe/{fresh}")).status_code == 200


async def test_tokens_forged_with_the_published_default_are_refused(  # type: ignore[no-untyped-def]
    client, admin, engine, settings
) -> None:
    _, _, message_id = await _seeded(client, admin, engine, settings)
    before = await snapshot(engine)
    for published in ("dev-secret-change-me", "change-me"):
        forged = make_token(published, message_id)
        assert (await client.post(f"/unsubscribe/{forged}")).status_code == 404
    assert await snapshot(engine) == before
