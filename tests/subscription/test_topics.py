"""Topics: a topic campaign reaches only the confirmed subscribers of its segment, its
one-click unsubscribe leaves only that topic, the preference centre changes exactly what
the reader chose, and every change has a consent record, erased with the contact."""

from __future__ import annotations

from sqlalchemy import text

from mailer.campaign import audience_fixup
from mailer.db import transaction
from mailer.secrets import signing_key
from mailer.subscription.tokens import preferences_token
from mailer.suppression.tokens import make_token
from tests import factories
from tests.subscription.conftest import rows, statuses, topic


async def _contact(client, admin, email: str, tags: list[str], topics: dict[int, str]) -> None:  # type: ignore[no-untyped-def]
    r = await client.put(f"/v1/contacts/{email}", headers=admin, json={"tags": tags})
    assert r.status_code in (200, 201), r.text
    if topics:
        choices = [{"topic_id": t, "status": s} for t, s in topics.items()]
        r = await client.put(
            f"/v1/contacts/{email}/topics", headers=admin, json={"topics": choices}
        )
        assert r.status_code == 200, r.text


async def _launch(client, admin, sessionmaker, **body) -> int:  # type: ignore[no-untyped-def]
    campaign = await factories.campaign(client, admin, **body)
    r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
    assert r.status_code == 202, r.text
    async with transaction(sessionmaker) as session:
        await audience_fixup.fix_audience(session, campaign["id"])
    return int(campaign["id"])


async def _audience(engine, campaign_id: int) -> set[str]:  # type: ignore[no-untyped-def]
    found = await rows(engine, "SELECT email FROM messages WHERE campaign_id = :c", c=campaign_id)
    return {e for (e,) in found}


async def test_topic_campaign_reaches_confirmed_subscribers_of_its_segment(
    client, admin, engine, sessionmaker
) -> None:
    news = await topic(client, admin, "News")
    offers = await topic(client, admin, "Offers")
    await _contact(client, admin, "in@example.test", ["vip"], {news: "subscribed"})
    await _contact(client, admin, "other-topic@example.test", ["vip"], {offers: "subscribed"})
    await _contact(client, admin, "left@example.test", ["vip"], {news: "unsubscribed"})
    await _contact(client, admin, "none@example.test", ["vip"], {})
    await _contact(client, admin, "not-in-segment@example.test", [], {news: "subscribed"})
    await _contact(client, admin, "unconfirmed@example.test", ["vip"], {})
    async with engine.begin() as conn:  # as a double opt-in form leaves it
        await conn.execute(
            text(
                "INSERT INTO contact_topics (contact_id, topic_id, status) SELECT id, :t,"
                " 'unconfirmed' FROM contacts WHERE email = 'unconfirmed@example.test'"
            ),
            {"t": news},
        )
    vip = await factories.segment(
        client, admin, {"field": "tags", "op": "contains", "value": "vip"}
    )
    topic_campaign = await _launch(client, admin, sessionmaker, segment_id=vip["id"], topic_id=news)
    assert await _audience(engine, topic_campaign) == {"in@example.test"}
    # no topic: today's behaviour, every subscribed contact of the segment
    plain = await _launch(client, admin, sessionmaker, segment_id=vip["id"])
    assert await _audience(engine, plain) == {
        "in@example.test",
        "other-topic@example.test",
        "left@example.test",
        "none@example.test",
        "unconfirmed@example.test",
    }
    r = await client.get(f"/v1/campaigns/{topic_campaign}", headers=admin)
    assert r.json()["topic_id"] == news


async def test_unknown_topic_is_422(client, admin) -> None:
    template = await factories.template(client, admin)
    segment = await factories.segment(client, admin)
    r = await client.post(
        "/v1/campaigns",
        headers=admin,
        json={
            "name": "x",
            "template_id": template["id"],
            "segment_id": segment["id"],
            "topic_id": 4242,
            "from_address": "news@mailer.test",
        },
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == ["body", "topic_id"]


async def test_one_click_unsubscribe_of_a_topic_campaign_leaves_only_that_topic(
    client, admin, engine, sessionmaker, settings
) -> None:
    news = await topic(client, admin, "News")
    offers = await topic(client, admin, "Offers")
    email = "reader@example.test"
    await _contact(client, admin, email, [], {news: "subscribed", offers: "subscribed"})
    campaign_id = await _launch(client, admin, sessionmaker, topic_id=news)
    [(message_id,)] = await rows(
        engine, "SELECT id FROM messages WHERE campaign_id = :c", c=campaign_id
    )
    token = make_token(signing_key(settings), message_id)
    r = await client.post(
        f"/unsubscribe/{token}",
        content="List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200
    assert await statuses(engine, email) == {news: "unsubscribed", offers: "subscribed"}
    contact = (await client.get(f"/v1/contacts/{email}", headers=admin)).json()
    assert (contact["status"], contact["suppressed"]) == ("subscribed", False)
    stats = (await client.get(f"/v1/campaigns/{campaign_id}", headers=admin)).json()["stats"]
    assert stats["unsubscribed"] == 1
    changes = await rows(engine, "SELECT topic_id, status, source FROM topic_changes ORDER BY id")
    assert changes[-1] == (news, "unsubscribed", "unsubscribe_link")


async def test_preference_centre_changes_exactly_what_the_reader_chose(
    client, admin, engine, settings
) -> None:
    a = await topic(client, admin, "A")
    b = await topic(client, admin, "B")
    public = await topic(client, admin, "Public", public=True)
    private = await topic(client, admin, "Private")
    email = "reader@example.test"
    await _contact(client, admin, email, [], {a: "subscribed", b: "subscribed"})
    [(contact_id,)] = await rows(engine, "SELECT id FROM contacts WHERE email = :e", e=email)
    token = preferences_token(settings, contact_id)
    page = await client.get(f"/preferences/{token}")
    assert page.status_code == 200
    assert "Public" in page.text and "Private" not in page.text
    r = await client.post(f"/preferences/{token}", data={"topics": [str(a), str(public)]})
    assert r.status_code == 200
    assert await statuses(engine, email) == {
        a: "subscribed",
        b: "unsubscribed",
        public: "subscribed",
    }
    assert private not in await statuses(engine, email)
    sources = await rows(engine, "SELECT DISTINCT source FROM topic_changes WHERE id > 2")
    assert sources == [("preference_centre",)]
    r = await client.post(f"/preferences/{token}", data={"leave_all": "1"})
    assert set((await statuses(engine, email)).values()) == {"unsubscribed"}
    contact = (await client.get(f"/v1/contacts/{email}", headers=admin)).json()
    assert contact["status"] == "unsubscribed"
    # another contact's token cannot be made from this one
    assert (await client.get(f"/preferences/{token[:-1]}x")).status_code == 404
    assert (
        await client.get(f"/preferences/c{contact_id + 1:x}.{token.split('.')[1]}")
    ).status_code == 404


async def test_consent_records_for_every_change_erased_with_the_contact(
    client, admin, engine, settings
) -> None:
    news = await topic(client, admin, "News")
    email = "reader@example.test"
    await _contact(client, admin, email, [], {news: "subscribed"})
    await _contact(client, admin, email, [], {news: "subscribed"})  # no change, no record
    await _contact(client, admin, email, [], {news: "unsubscribed"})
    r = await client.get(f"/v1/contacts/{email}/consent", headers=admin)
    assert r.status_code == 200
    items = r.json()["items"]
    assert [(i["status"], i["source"], i["topic"]) for i in items] == [
        ("subscribed", "api", "News"),
        ("unsubscribed", "api", "News"),
    ]
    page = await client.get(f"/v1/contacts/{email}/consent?limit=1", headers=admin)
    assert page.json()["next_cursor"] is not None
    r = await client.delete(f"/v1/contacts/{email}", headers=admin)
    assert r.status_code == 200, r.text
    assert await rows(engine, "SELECT 1 FROM topic_changes") == []
    assert await rows(engine, "SELECT 1 FROM contact_topics") == []
    assert (await client.get(f"/v1/contacts/{email}/consent", headers=admin)).status_code == 404


async def test_put_contact_sets_topics_with_consent_records(client, admin, engine) -> None:  # type: ignore[no-untyped-def]
    news = await topic(client, admin, "News")
    offers = await topic(client, admin, "Offers")
    email = "reader@example.test"
    body = {"topics": {str(news): "subscribed", str(offers): "unsubscribed"}}
    r = await client.put(f"/v1/contacts/{email}", headers=admin, json=body)
    assert r.status_code == 201, r.text
    assert await statuses(engine, email) == {news: "subscribed", offers: "unsubscribed"}
    records = await rows(engine, "SELECT topic_id, status, source FROM topic_changes ORDER BY id")
    assert sorted(records) == sorted([(news, "subscribed", "api"), (offers, "unsubscribed", "api")])
    r = await client.put(
        f"/v1/contacts/{email}", headers=admin, json={"topics": {"4242": "subscribed"}}
    )
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == ["body", "topics"]
    # a contact put without topics leaves them as they are
    r = await client.put(f"/v1/contacts/{email}", headers=admin, json={"tags": ["x"]})
    assert await statuses(engine, email) == {news: "subscribed", offers: "unsubscribed"}


async def test_consent_origins_are_cleared_after_the_retention_time(  # type: ignore[no-untyped-def]
    client, admin, engine, sessionmaker, redis, settings
) -> None:
    from mailer.subscription.service import forget_old_origins

    news = await topic(client, admin, "News")
    await _contact(client, admin, "old@example.test", [], {news: "subscribed"})
    await _contact(client, admin, "new@example.test", [], {news: "subscribed"})
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE topic_changes SET ip = '192.0.2.1', user_agent = 'ua'"))
        await conn.execute(
            text(
                "UPDATE topic_changes SET changed_at = now() - make_interval(days => :d + 1)"
                " WHERE contact_id = (SELECT id FROM contacts WHERE email = 'old@example.test')"
            ),
            {"d": settings.consent_retention_days},
        )
    async with transaction(sessionmaker) as session:
        assert await forget_old_origins(session, redis, settings) == 1
    async with transaction(sessionmaker) as session:  # once an hour
        assert await forget_old_origins(session, redis, settings) == 0
    kept = await rows(
        engine,
        "SELECT c.email, t.status, t.ip, t.user_agent FROM topic_changes t"
        " JOIN contacts c ON c.id = t.contact_id ORDER BY c.email",
    )
    assert kept == [
        ("new@example.test", "subscribed", "192.0.2.1", "ua"),
        ("old@example.test", "subscribed", None, None),
    ]


async def test_an_unconfirmed_signup_gets_no_marketing_mail(  # type: ignore[no-untyped-def]
    client, admin, engine, sessionmaker, settings
) -> None:
    from tests.subscription.conftest import form, submit

    news = await topic(client, admin, "News")
    f = await form(client, admin, [news])
    assert (await submit(client, settings, f["id"], "new@example.test")).status_code == 200
    await _contact(client, admin, "old@example.test", [], {})
    plain = await _launch(client, admin, sessionmaker)
    assert await _audience(engine, plain) == {"old@example.test"}
    topic_campaign = await _launch(client, admin, sessionmaker, topic_id=news)
    assert await _audience(engine, topic_campaign) == set()
