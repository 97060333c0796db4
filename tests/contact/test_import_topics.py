"""Topic subscriptions in CSV imports: the ``topics`` and ``topics_unsubscribed`` columns set
them with their consent records (source ``import``); a row naming an unknown topic is
rejected with its reason; a file without those columns changes no subscription."""

from __future__ import annotations

from mailer.contact import csv_columns
from tests.contact.test_imports import run
from tests.subscription.conftest import rows, statuses, topic


async def _changes(engine, email: str) -> list[tuple]:  # type: ignore[no-untyped-def]
    return await rows(
        engine,
        "SELECT tc.topic_id, tc.status, tc.source, tc.form_id, tc.ip FROM topic_changes tc"
        " JOIN contacts c ON c.id = tc.contact_id WHERE c.email = :e ORDER BY tc.id",
        e=email,
    )


async def test_topics_columns_set_subscriptions_with_consent_records(
    client, admin, sessionmaker, engine
) -> None:
    news = await topic(client, admin, "News")
    offers = await topic(client, admin, "Offers")
    updates = await topic(client, admin, "Product updates")
    report = await run(
        client,
        admin,
        sessionmaker,
        "email,first_name,topics,topics_unsubscribed\n"
        "ada@example.test,Ada,news; product updates,offers\n"
        f"bob@example.test,Bob,{offers}|NEWS,\n"
        "cy@example.test,Cy,,\n",
    )
    assert (report["created"], report["rejected"], report["errors"]) == (3, 0, [])
    assert await statuses(engine, "ada@example.test") == {
        news: "subscribed",
        updates: "subscribed",
        offers: "unsubscribed",
    }
    assert await statuses(engine, "bob@example.test") == {news: "subscribed", offers: "subscribed"}
    assert await statuses(engine, "cy@example.test") == {}  # empty cells: no topic touched
    assert sorted(await _changes(engine, "ada@example.test")) == [
        (news, "subscribed", "import", None, None),
        (offers, "unsubscribed", "import", None, None),
        (updates, "subscribed", "import", None, None),
    ]
    # the topic columns are not attributes
    r = await client.get("/v1/contacts/ada@example.test", headers=admin)
    assert r.json()["attributes"] == {"first_name": "Ada"}
    # and the consent records are the API's, per contact
    r = await client.get("/v1/contacts/bob@example.test/consent", headers=admin)
    assert {(c["topic"], c["source"]) for c in r.json()["items"]} == {
        ("News", "import"),
        ("Offers", "import"),
    }


async def test_existing_contacts_change_only_the_topics_named(
    client, admin, sessionmaker, engine
) -> None:
    news = await topic(client, admin, "News")
    offers = await topic(client, admin, "Offers")
    r = await client.put(
        "/v1/contacts/ada@example.test",
        headers=admin,
        json={"topics": {str(news): "subscribed", str(offers): "subscribed"}},
    )
    assert r.status_code == 201, r.text
    # several chunks, the second import meeting existing contacts (the merge path)
    body = "email,topics_unsubscribed\nada@example.test,News\n" + "".join(
        f"n{i}@example.test,news\n" for i in range(5)
    )
    report = await run(client, admin, sessionmaker, body, chunk_rows=2)
    assert (report["created"], report["updated"], report["rejected"]) == (5, 1, 0)
    assert await statuses(engine, "ada@example.test") == {
        news: "unsubscribed",
        offers: "subscribed",
    }
    assert [c[:3] for c in await _changes(engine, "ada@example.test")] == [
        (news, "subscribed", "api"),
        (offers, "subscribed", "api"),
        (news, "unsubscribed", "import"),
    ]
    assert await statuses(engine, "n4@example.test") == {news: "unsubscribed"}
    # the same file again changes nothing and records nothing
    await run(client, admin, sessionmaker, body, chunk_rows=2)
    assert len(await _changes(engine, "ada@example.test")) == 3
    assert len(await _changes(engine, "n4@example.test")) == 1


async def test_a_row_naming_an_unknown_topic_is_rejected_with_its_reason(
    client, admin, sessionmaker, engine
) -> None:
    news = await topic(client, admin, "News")
    report = await run(
        client,
        admin,
        sessionmaker,
        "email,topics,topics_unsubscribed\n"
        "ada@example.test,news;weekly digest,\n"
        "bob@example.test,news,\n"
        "cy@example.test,999999,\n"
        "dee@example.test,news,News\n",
    )
    assert (report["created"], report["rejected"]) == (1, 3)
    assert report["errors"] == [
        {
            "row": 2,
            "email": "ada@example.test",
            "reason": "topics: no topic 'weekly digest' (name a topic by its name or id)",
        },
        {
            "row": 4,
            "email": "cy@example.test",
            "reason": "topics: no topic '999999' (name a topic by its name or id)",
        },
        {
            "row": 5,
            "email": "dee@example.test",
            "reason": "topic 'News' is in both topics and topics_unsubscribed",
        },
    ]
    assert await statuses(engine, "bob@example.test") == {news: "subscribed"}
    found = await rows(engine, "SELECT email FROM contacts ORDER BY email")
    assert found == [("bob@example.test",)]  # a rejected row creates no contact either


async def test_a_file_without_topic_columns_leaves_subscriptions_alone(
    client, admin, sessionmaker, engine
) -> None:
    news = await topic(client, admin, "News")
    r = await client.put(
        "/v1/contacts/ada@example.test", headers=admin, json={"topics": {str(news): "subscribed"}}
    )
    assert r.status_code == 201, r.text
    # "topic" (not "topics") is an attribute like any other column, as before
    report = await run(
        client,
        admin,
        sessionmaker,
        "email,topic,status\nada@example.test,News,unsubscribed\nbob@example.test,News,\n",
    )
    assert (report["created"], report["updated"], report["rejected"]) == (1, 1, 0)
    assert await statuses(engine, "ada@example.test") == {news: "subscribed"}
    assert await statuses(engine, "bob@example.test") == {}
    assert len(await _changes(engine, "ada@example.test")) == 1
    r = await client.get("/v1/contacts/ada@example.test", headers=admin)
    assert r.json()["attributes"]["topic"] == "News" and r.json()["status"] == "unsubscribed"
    assert await rows(engine, "SELECT with_topics FROM contact_imports") == [(False,)]


def test_topic_cells_name_topics_by_name_or_id() -> None:
    known = csv_columns.topic_lookup([(1, "News"), (2, "Offers"), (3, "2")])
    assert csv_columns.topic_cells(known, " news | 1 ;", "") == ('{"1": "subscribed"}', None)
    # a name wins over another topic's id
    assert csv_columns.topic_cells(known, "2", "offers") == (
        '{"2": "unsubscribed", "3": "subscribed"}',
        None,
    )
    assert csv_columns.topic_cells(known, "", " ; ") == (None, None)
