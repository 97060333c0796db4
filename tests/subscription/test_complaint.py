"""A complaint leaves every topic, recorded as such."""

from __future__ import annotations

import pytest

from tests.fixtures.sns import ses_event, sns_app, sns_settings, sns_signer
from tests.subscription.conftest import rows, statuses, topic
from tests.webhook.conftest import post, process, seed_sent

__all__ = ["sns_app", "sns_settings", "sns_signer"]


@pytest.fixture
async def app(sns_app: object) -> object:
    return sns_app


async def test_complaint_leaves_every_topic(
    client, admin, engine, sessionmaker, sns_signer
) -> None:  # type: ignore[no-untyped-def]
    news = await topic(client, admin, "News")
    offers = await topic(client, admin, "Offers")
    email = "angry@example.test"
    _, ses = await seed_sent(client, admin, engine, [email, "calm@example.test"])
    for who in (email, "calm@example.test"):
        choices = [
            {"topic_id": news, "status": "subscribed"},
            {"topic_id": offers, "status": "subscribed"},
        ]
        r = await client.put(f"/v1/contacts/{who}/topics", headers=admin, json={"topics": choices})
        assert r.status_code == 200, r.text
    await post(client, sns_signer.notification(ses_event("Complaint", ses[email], [email])))
    await process(sessionmaker)
    assert await statuses(engine, email) == {news: "unsubscribed", offers: "unsubscribed"}
    assert await statuses(engine, "calm@example.test") == {news: "subscribed", offers: "subscribed"}
    recorded = await rows(engine, "SELECT count(*) FROM topic_changes WHERE source = 'complaint'")
    assert recorded == [(2,)]
