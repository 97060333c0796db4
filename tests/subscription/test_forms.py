"""Signup forms and double opt-in: an unconfirmed subscription and one confirmation mail,
a link that confirms once, and bots refused the same way for known and new addresses."""

from __future__ import annotations

import asyncio
import time

from sqlalchemy import text

from mailer.subscription.tokens import confirm_token
from tests.subscription.conftest import (
    aged_token,
    confirmation_mails,
    form,
    rows,
    statuses,
    submit,
    topic,
)


def _token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def test_submission_is_unconfirmed_with_exactly_one_confirmation_mail(
    client, admin, engine, settings
) -> None:
    news = await topic(client, admin, "News")
    f = await form(client, admin, [news])
    for _ in range(3):  # a resubmission storm sends one mail
        r = await submit(client, settings, f["id"], "Ada@Example.test", first_name="Ada")
        assert r.status_code == 200, r.text
    assert await statuses(engine, "ada@example.test") == {news: "unconfirmed"}
    [(contact_status, first_name)] = await rows(
        engine,
        "SELECT status, attributes->>'first_name' FROM contacts WHERE email = 'ada@example.test'",
    )
    assert (contact_status, first_name) == ("unconfirmed", "Ada")
    mails = await confirmation_mails(engine, "ada@example.test")
    assert len(mails) == 1
    assert mails[0][1].startswith(f"{settings.public_url}/confirm/")


async def test_a_burst_of_signups_sharing_groups_keeps_each_rule(
    client, admin, engine, settings
) -> None:
    # concurrent submissions are committed together (mailer.group_commit): the same
    # address three times in one burst still gets one mail, an unknown form in the same
    # burst is its own 404, and each signup keeps its own consent record and attributes
    news = await topic(client, admin, "News")
    offers = await topic(client, admin, "Offers", double_opt_in=False)
    f = await form(client, admin, [news, offers])
    g = await form(client, admin, [offers], message="Thanks!")
    # 29 posts: within the default 30 a minute from one client
    readers = [f"reader{i}@example.test" for i in range(24)]
    posts = [
        *(
            submit(client, settings, f["id"], e, first_name=f"R{i}", topics=[str(news)])
            for i, e in enumerate(readers)
        ),
        *(submit(client, settings, f["id"], "ada@example.test", topics=[str(news)]) for _ in "abc"),
        submit(client, settings, g["id"], "ada@example.test"),
        submit(client, settings, 999_999, "bob@example.test"),
    ]
    answers = await asyncio.gather(*posts)
    assert [r.status_code for r in answers] == [200] * 28 + [404]
    assert answers[-2].json()["message"] == "Thanks!"
    assert await statuses(engine, "ada@example.test") == {news: "unconfirmed", offers: "subscribed"}
    assert len(await confirmation_mails(engine, "ada@example.test")) == 1
    for email in readers:
        assert await statuses(engine, email) == {news: "unconfirmed"}
        [(url,)] = [(u,) for _, u in await confirmation_mails(engine, email)]
        assert url.startswith(f"{settings.public_url}/confirm/")
    [(named,)] = await rows(
        engine, "SELECT attributes->>'first_name' FROM contacts WHERE email = :e", e=readers[7]
    )
    assert named == "R7"
    # one consent record per change, each naming its form; nobody for the unknown form
    consent = await rows(
        engine,
        "SELECT c.email, t.form_id, t.status FROM topic_changes t"
        " JOIN contacts c ON c.id = t.contact_id ORDER BY c.email, t.id",
    )
    assert len(consent) == 24 + 2
    ada = sorted((s, form_id) for e, form_id, s in consent if e == "ada@example.test")
    assert ada == sorted([("unconfirmed", f["id"]), ("subscribed", g["id"])])
    assert await rows(engine, "SELECT 1 FROM contacts WHERE email = 'bob@example.test'") == []
    # every confirmation row points at its mail
    [(unlinked,)] = await rows(
        engine, "SELECT count(*) FROM confirmations WHERE message_id IS NULL"
    )
    assert unlinked == 0


async def test_the_link_confirms_once(client, admin, engine, settings) -> None:
    news = await topic(client, admin, "News")
    offers = await topic(client, admin, "Offers")
    f = await form(client, admin, [news, offers])
    await submit(client, settings, f["id"], "ada@example.test", topics=[str(news)])
    [(_, url)] = await confirmation_mails(engine, "ada@example.test")
    token = _token_of(url)
    page = await client.get(f"/confirm/{token}")
    assert page.status_code == 200
    assert await statuses(engine, "ada@example.test") == {news: "unconfirmed"}  # GET: nothing
    first = await client.post(f"/confirm/{token}")
    assert first.status_code == 200, first.text
    # only the topic asked for, and the contact may now get marketing mail
    assert await statuses(engine, "ada@example.test") == {news: "subscribed"}
    [(status,)] = await rows(engine, "SELECT status FROM contacts WHERE email = 'ada@example.test'")
    assert status == "subscribed"
    again = await client.post(f"/confirm/{token}")
    assert again.status_code == 404
    changes = await rows(engine, "SELECT status, source FROM topic_changes ORDER BY id")
    assert changes == [("unconfirmed", "form"), ("subscribed", "confirmation_link")]


async def test_expired_or_tampered_link_changes_nothing(client, admin, engine, settings) -> None:
    news = await topic(client, admin, "News")
    f = await form(client, admin, [news])
    await submit(client, settings, f["id"], "ada@example.test")
    [(_, url)] = await confirmation_mails(engine, "ada@example.test")
    token = _token_of(url)
    tampered = token[:-1] + ("0" if token[-1] != "0" else "1")
    other = confirm_token(settings, 999_999)  # genuine signature, no such confirmation
    for bad in (tampered, other, "nonsense"):
        assert (await client.post(f"/confirm/{bad}")).status_code == 404
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE confirmations SET expires_at = now() - interval '1 s'"))
    assert (await client.post(f"/confirm/{token}")).status_code == 404
    assert await statuses(engine, "ada@example.test") == {news: "unconfirmed"}


async def test_bots_are_refused_with_the_answer_people_get(client, admin, engine, settings) -> None:
    news = await topic(client, admin, "News")
    f = await form(client, admin, [news])
    r = await client.put("/v1/contacts/known@example.test", headers=admin, json={})
    assert r.status_code in (200, 201)
    person = await submit(client, settings, f["id"], "person@example.test")
    page = await client.get(f"/subscribe/{f['id']}", headers={"accept": "application/json"})
    fresh = page.json()["token"]  # a form posted the moment it was shown: a bot
    answers = []
    for email in ("known@example.test", "new@example.test"):
        answers.append(await submit(client, settings, f["id"], email, website="http://spam"))
        answers.append(
            await client.post(f"/subscribe/{f['id']}", json={"email": email, "token": fresh})
        )
        answers.append(await client.post(f"/subscribe/{f['id']}", json={"email": email}))
    for answer in answers:
        assert (answer.status_code, answer.json()) == (person.status_code, person.json())
    assert await statuses(engine, "known@example.test") == {}
    assert await rows(engine, "SELECT 1 FROM contacts WHERE email = 'new@example.test'") == []
    assert len(await confirmation_mails(engine, "known@example.test")) == 0


async def test_rate_limits_answer_the_same_for_known_and_new(
    client, admin, engine, settings
) -> None:
    news = await topic(client, admin, "News", double_opt_in=False)
    f = await form(client, admin, [news])
    await client.put("/v1/contacts/known@example.test", headers=admin, json={})
    limit = settings.subscribe_max_per_address_per_hour
    for email in ("known@example.test", "new@example.test"):
        codes = [(await submit(client, settings, f["id"], email)).status_code for _ in range(limit)]
        assert codes == [200] * limit
        over = await submit(client, settings, f["id"], email)
        assert over.status_code == 429
        assert over.json()["error"]["code"] == "rate_limited"
    # per client address: a burst of different addresses from one client
    start = time.monotonic()
    refused = 0
    for i in range(settings.subscribe_max_per_ip_per_minute):
        r = await submit(client, settings, f["id"], f"burst{i}@example.test")
        refused += r.status_code == 429
    assert refused > 0 or time.monotonic() - start > 60


async def test_hosted_form_page_and_snippet(client, admin, settings) -> None:
    news = await topic(client, admin, "News")
    f = await form(client, admin, [news])
    page = await client.get(f"/subscribe/{f['id']}")
    assert page.status_code == 200
    assert 'name="website"' in page.text and 'name="token"' in page.text
    assert f"/subscribe/{f['id']}" in f["embed_html"]
    assert (await client.get("/subscribe/999999")).status_code == 404


async def test_json_signups_answered_lean_refuse_like_the_app(client, admin, settings) -> None:
    # POST /subscribe/{id} with JSON is answered before the router (SignupEndpoint); what
    # it does not take is the app's, so every refusal has the app's envelope and status
    news = await topic(client, admin, "News")
    f = await form(client, admin, [news])
    token = aged_token(settings, f["id"])
    for path in ("/subscribe/abc", "/subscribe/0", "/subscribe/99999999999999999999"):
        r = await client.post(path, json={"email": "a@example.test", "token": token})
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"]["code"] == "invalid"
    cases = [
        (b"[1, 2]", 422),  # not an object
        (b'{"email": "a\\u0000b@example.test"}', 422),  # the app's JSON guard
        (b'{"email": "not an address", "token": "x"}', 422),
    ]
    for body, status in cases:
        r = await client.post(
            f"/subscribe/{f['id']}", content=body, headers={"content-type": "application/json"}
        )
        assert r.status_code == status, (body, r.text)
        assert set(r.json()["error"]) >= {"code", "message", "details"}
        assert r.headers.get("x-request-id")
    missing = await client.post("/subscribe/424242", json={"email": "a@example.test"})
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    ok = await client.post(f"/subscribe/{f['id']}", json={"email": "a@example.test"})
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    assert ok.headers.get("x-request-id")
