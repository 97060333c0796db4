"""Signup forms and double opt-in: an unconfirmed subscription and one confirmation mail,
a link that confirms once, and bots refused the same way for known and new addresses."""

from __future__ import annotations

import time

from sqlalchemy import text

from mailer.subscription.tokens import confirm_token
from tests.subscription.conftest import (
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
