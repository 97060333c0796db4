"""Topics and signup forms in the console, through its forms: created and edited by a
marketer (recorded in the audit), read by a viewer without a control that changes them;
a form's page shows its embeddable snippet and its hosted page; a contact's page shows
its topics and consent records and a marketer changes them as the API does."""

from __future__ import annotations

from markupsafe import escape
from sqlalchemy import text

from tests import factories
from tests.console.helpers import make_person, session_csrf, sign_in
from tests.subscription.conftest import rows, statuses, topic


async def _signed_in(client, sessionmaker, settings, role: str = "marketer") -> str:  # type: ignore[no-untyped-def]
    await make_person(sessionmaker, settings, f"{role}@example.test", role)
    assert (await sign_in(client, f"{role}@example.test")).status_code == 303
    return await session_csrf(client)


async def test_a_marketer_creates_and_edits_a_topic(  # type: ignore[no-untyped-def]
    client, admin, sessionmaker, settings, engine
) -> None:
    csrf = await _signed_in(client, sessionmaker, settings)
    r = await client.post(
        "/console/topics",
        data={"csrf": csrf, "name": "Weekly", "description": "Every Monday", "public": "on"},
    )
    assert r.status_code == 303 and r.headers["location"] == "/console/topics"
    [found] = (await client.get("/v1/topics", headers=admin)).json()["items"]
    assert (found["name"], found["description"], found["public"], found["double_opt_in"]) == (
        "Weekly",
        "Every Monday",
        True,
        False,  # an unticked box
    )
    # the same name twice is the API's 409, shown as a page
    r = await client.post("/console/topics", data={"csrf": csrf, "name": "Weekly"})
    assert r.status_code == 409 and "already" in r.text
    r = await client.post("/console/topics", data={"csrf": csrf, "name": ""})
    assert r.status_code == 422

    r = await client.post(
        f"/console/topics/{found['id']}",
        data={"csrf": csrf, "name": "Weekly news", "double_opt_in": "on"},
    )
    assert r.status_code == 303
    changed = (await client.get(f"/v1/topics/{found['id']}", headers=admin)).json()
    assert (changed["name"], changed["public"], changed["double_opt_in"]) == (
        "Weekly news",
        False,
        True,
    )
    page = await client.get(f"/console/topics/{found['id']}")
    assert page.status_code == 200 and 'id="save-topic"' in page.text
    assert "topic.created" in page.text and "topic.changed" in page.text  # the audit
    assert await rows(
        engine, "SELECT actor, action FROM audit_records WHERE subject_kind = 'topic' ORDER BY id"
    ) == [("marketer@example.test", "topic.created"), ("marketer@example.test", "topic.changed")]
    assert (await client.get("/console/topics/99999999")).status_code == 404


async def test_the_topics_page_counts_subscribers_by_status(  # type: ignore[no-untyped-def]
    client, admin, sessionmaker, settings
) -> None:
    news = await topic(client, admin, "News")
    await topic(client, admin, "Quiet")
    for email, status in [
        ("a@x.test", "subscribed"),
        ("b@x.test", "subscribed"),
        ("c@x.test", "unsubscribed"),
    ]:
        r = await client.put(
            f"/v1/contacts/{email}", headers=admin, json={"topics": {str(news): status}}
        )
        assert r.status_code == 201, r.text
    await _signed_in(client, sessionmaker, settings, "viewer")
    page = await client.get("/console/topics")
    assert page.status_code == 200
    row = page.text.split(f'id="topic-{news}"', 1)[1].split("</tr>", 1)[0]
    assert [c.split(">")[-1] for c in row.split("</td>")[3:6]] == ["2", "0", "1"]
    # a viewer reads, and has no control that changes anything
    assert 'id="create-topic"' not in page.text
    assert 'id="save-topic"' not in (await client.get(f"/console/topics/{news}")).text
    assert 'href="/console/topics"' in page.text and 'href="/console/forms"' in page.text  # nav


async def test_a_marketer_creates_a_form_and_sees_its_snippet_and_hosted_page(  # type: ignore[no-untyped-def]
    client, admin, sessionmaker, settings
) -> None:
    news = await topic(client, admin, "News")
    offers = await topic(client, admin, "Offers")
    csrf = await _signed_in(client, sessionmaker, settings)
    new = await client.get("/console/forms/new")
    assert new.status_code == 200 and f'value="{news}"' in new.text
    body = {
        "csrf": csrf,
        "name": "Footer",
        "topic_ids": [str(news), str(offers)],
        "fields": "first_name, company",
        "consent_text": "Send me the news.",
        "after": "redirect",
        "redirect_url": "https://acme.example/thanks",
        "message": "Thanks",
        "from_address": "Acme <news@acme.example>",
        "confirm_subject": "",
        "confirm_html": "",
    }
    r = await client.post("/console/forms", data=body)
    assert r.status_code == 303, r.text
    form_id = int(r.headers["location"].rsplit("/", 1)[1])
    made = (await client.get(f"/v1/forms/{form_id}", headers=admin)).json()
    assert made["topic_ids"] == [news, offers] and made["fields"] == ["first_name", "company"]
    assert made["redirect_url"] == "https://acme.example/thanks"
    assert made["confirm_subject"] is None and made["confirm_html"] is None  # the built-in
    page = await client.get(f"/console/forms/{form_id}")
    assert str(escape(made["embed_html"])) in page.text  # in a textarea, to copy
    assert f'href="/subscribe/{form_id}"' in page.text
    hosted = await client.get(f"/subscribe/{form_id}")
    assert hosted.status_code == 200 and "Send me the news." in hosted.text
    listed = await client.get("/console/forms")
    assert "Footer" in listed.text and "News, Offers" in listed.text

    # an edit: a message instead of the redirect, one topic less; the version goes up
    # (an emptied message is left as it is)
    body.update(
        after="message", topic_ids=[str(offers)], confirm_subject="Confirm, please", message=""
    )
    r = await client.post(f"/console/forms/{form_id}", data=body)
    assert r.status_code == 303, r.text
    changed = (await client.get(f"/v1/forms/{form_id}", headers=admin)).json()
    assert (changed["topic_ids"], changed["redirect_url"], changed["version"]) == (
        [offers],
        None,
        2,
    )
    assert changed["confirm_subject"] == "Confirm, please" and changed["message"] == "Thanks"
    # bad input is the API's 422, as a page, and changes nothing
    r = await client.post(f"/console/forms/{form_id}", data={**body, "topic_ids": []})
    assert r.status_code == 422
    r = await client.post(f"/console/forms/{form_id}", data={**body, "topic_ids": ["999999"]})
    assert r.status_code == 422 and "no topics" in r.text
    assert (await client.get(f"/v1/forms/{form_id}", headers=admin)).json()["version"] == 2


async def test_a_viewer_reads_a_form_without_saving_it(  # type: ignore[no-untyped-def]
    client, admin, sessionmaker, settings
) -> None:
    news = await topic(client, admin, "News")
    r = await client.post(
        "/v1/forms",
        headers=admin,
        json={"name": "Side", "topic_ids": [news], "from_address": "news@acme.example"},
    )
    form_id = r.json()["id"]
    await _signed_in(client, sessionmaker, settings, "viewer")
    page = await client.get(f"/console/forms/{form_id}")
    assert page.status_code == 200 and "<fieldset disabled" in page.text
    assert 'id="save-form"' not in page.text and 'id="embed"' in page.text
    assert 'id="new-form"' not in (await client.get("/console/forms")).text


async def test_a_marketer_changes_a_contacts_topics_recorded_as_the_api_does(  # type: ignore[no-untyped-def]
    client, admin, sessionmaker, settings, engine
) -> None:
    news = await topic(client, admin, "News")
    offers = await topic(client, admin, "Offers")
    await factories.contacts(client, admin, 1, prefix="ct")
    email = "ct0@example.test"
    csrf = await _signed_in(client, sessionmaker, settings)
    page = await client.get(f"/console/contacts/{email}")
    assert f'id="contact-topic-{news}"' in page.text and "never subscribed" in page.text
    r = await client.post(
        f"/console/contacts/{email}/topics",
        data={"csrf": csrf, f"topic-{news}": "subscribed", f"topic-{offers}": ""},
    )
    assert r.status_code == 303
    assert await statuses(engine, email) == {news: "subscribed"}
    r = await client.post(
        f"/console/contacts/{email}/topics",
        data={"csrf": csrf, f"topic-{news}": "unsubscribed", f"topic-{offers}": "subscribed"},
    )
    assert r.status_code == 303
    assert await statuses(engine, email) == {news: "unsubscribed", offers: "subscribed"}
    changes = await rows(
        engine,
        "SELECT tc.topic_id, tc.status, tc.source FROM topic_changes tc JOIN contacts c"
        " ON c.id = tc.contact_id WHERE c.email = :e ORDER BY tc.id",
        e=email,
    )
    assert changes == [
        (news, "subscribed", "api"),
        (news, "unsubscribed", "api"),
        (offers, "subscribed", "api"),
    ]
    page = await client.get(f"/console/contacts/{email}")
    consent = page.text.split('id="consent"', 1)[1].split("</table>", 1)[0]
    assert consent.count("<tr>") == 1 + 3 and "contact.topics_changed" in page.text
    # the same choice again changes and records nothing
    r = await client.post(
        f"/console/contacts/{email}/topics", data={"csrf": csrf, f"topic-{news}": "unsubscribed"}
    )
    assert r.status_code == 303
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM topic_changes"))).scalar() == 3
    # an unknown topic is the API's 422
    r = await client.post(
        f"/console/contacts/{email}/topics", data={"csrf": csrf, "topic-999999": "subscribed"}
    )
    assert r.status_code == 422 and "no topics" in r.text


async def test_the_wizard_offers_topics_and_a_campaign_keeps_its_topic(  # type: ignore[no-untyped-def]
    client, admin, sessionmaker, settings
) -> None:
    csrf = await _signed_in(client, sessionmaker, settings)
    news = await topic(client, admin, "News")
    template = await factories.template(client, admin)
    segment = await factories.segment(client, admin)
    page = await client.get("/console/campaigns/new")
    assert page.status_code == 200
    assert f'<option value="{news}">News</option>' in page.text
    body = {
        "csrf": csrf,
        "name": "To the News readers",
        "template_id": str(template["id"]),
        "segment_id": str(segment["id"]),
        "from_address": "news@mailer.test",
        "time_zone": "UTC",
    }
    r = await client.post("/console/campaigns", data={**body, "topic_id": str(news)})
    assert r.status_code == 303, r.text
    made = (
        await client.get(r.headers["location"].replace("/console", "/v1"), headers=admin)
    ).json()
    assert made["topic_id"] == news
    # no topic chosen: none, as the API's default
    r = await client.post("/console/campaigns", data={**body, "topic_id": ""})
    assert r.status_code == 303, r.text
    plain = (
        await client.get(r.headers["location"].replace("/console", "/v1"), headers=admin)
    ).json()
    assert plain["topic_id"] is None
    # an unknown topic is the API's 422, shown as a page
    r = await client.post("/console/campaigns", data={**body, "topic_id": "424242"})
    assert r.status_code == 422 and "topic" in r.text
