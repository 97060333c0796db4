"""Unsubscribe by mail, or no mailto: the List-Unsubscribe mailto only when inbound
unsubscribes are configured; a received unsubscribe message (SES receipt rule → SNS →
the webhook) with a genuine token unsubscribes exactly that contact, once; a forged one
changes nothing."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.config import Settings
from mailer.deliverability.headers import unsubscribe_mailto
from mailer.deliverability.inbound import tokens_of
from mailer.suppression.tokens import make_token
from mailer.webhook.tasks import drain_notifications
from tests import factories
from tests.campaign.conftest import seed_contacts
from tests.fixtures.sns import TOPIC, Signer, sns_signer
from tests.webhook.conftest import post, seed_sent, snapshot

__all__ = ["sns_signer"]
INBOUND = "unsub.mailer.test"


@pytest.fixture
def sns_settings(settings: Settings, sns_signer: Signer) -> Settings:
    return settings.model_copy(
        update={
            "sns_cert_dir": sns_signer.cert_dir,
            "sns_topic_arns": [TOPIC],
            "inbound_unsubscribe_domain": INBOUND,
        }
    )


@pytest.fixture
async def app(sns_settings: Settings, engine: AsyncEngine) -> AsyncIterator[object]:
    from mailer.app import create_app

    application = create_app(sns_settings)
    async with application.router.lifespan_context(application):
        yield application


def received(token: str, *, in_subject: bool = True, in_address: bool = True) -> dict[str, Any]:
    """An SES receipt notification (SNS action) as AWS documents it."""
    to = f"unsubscribe+{token}@{INBOUND}" if in_address else f"unsubscribe@{INBOUND}"
    subject = f"unsubscribe-{token}" if in_subject else "Unsubscribe"
    return {
        "notificationType": "Received",
        "mail": {
            "timestamp": "2026-12-07T10:00:00.000Z",
            "source": "reader@example.test",
            "messageId": "o3vrnil0e2ic28trm7dfhrc2v0clambda4nbp0g1",
            "destination": [to],
            "headersTruncated": False,
            "commonHeaders": {
                "returnPath": "reader@example.test",
                "from": ["Reader <reader@example.test>"],
                "to": [to],
                "subject": subject,
            },
        },
        "receipt": {
            "timestamp": "2026-12-07T10:00:00.000Z",
            "recipients": [to],
            "spamVerdict": {"status": "PASS"},
            "virusVerdict": {"status": "PASS"},
            "spfVerdict": {"status": "PASS"},
            "dkimVerdict": {"status": "PASS"},
            "dmarcVerdict": {"status": "PASS"},
            "action": {"type": "SNS", "topicArn": TOPIC, "encoding": "UTF8"},
        },
    }


def test_the_mailto_exists_only_with_inbound_unsubscribes(settings: Settings) -> None:
    assert unsubscribe_mailto(settings, "abc.def") is None
    configured = settings.model_copy(update={"inbound_unsubscribe_domain": INBOUND})
    assert unsubscribe_mailto(configured, "abc.def") == (
        f"mailto:unsubscribe+abc.def@{INBOUND}?subject=unsubscribe-abc.def"
    )


def test_tokens_are_read_from_the_address_or_the_subject() -> None:
    token = make_token("k" * 40, 77)
    assert tokens_of(received(token)) == [token]
    assert tokens_of(received(token, in_address=False)) == [token]
    assert tokens_of(received(token, in_subject=False)) == [token]
    assert tokens_of(received(token, in_subject=False, in_address=False)) == []
    reply = received(token, in_address=False)
    reply["mail"]["commonHeaders"]["subject"] = f"Re: unsubscribe-{token}"
    assert tokens_of(reply) == [token]


async def _unsubscribed(engine: AsyncEngine) -> list[tuple[str, str]]:
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT email, status FROM contacts ORDER BY email"))
        return [(r[0], r[1]) for r in rows]


async def test_a_received_unsubscribe_unsubscribes_that_contact_once(
    client, admin, engine, sessionmaker, sns_signer, sns_settings
) -> None:
    emails = ["ann@example.test", "bob@example.test"]
    campaign_id, _ = await seed_sent(client, admin, engine, emails)
    async with engine.connect() as conn:
        ann = (
            await conn.execute(text("SELECT id FROM messages WHERE email = :e"), {"e": emails[0]})
        ).scalar_one()
    token = make_token(sns_settings.secret_key, ann)

    r = await post(client, sns_signer.notification(received(token)))
    assert r.status_code == 200, r.text
    assert (await drain_notifications(sessionmaker, 500, settings=sns_settings)).notifications == 1
    assert await _unsubscribed(engine) == [(emails[0], "unsubscribed"), (emails[1], "subscribed")]
    stats = (await client.get(f"/v1/campaigns/{campaign_id}", headers=admin)).json()["stats"]
    assert stats["unsubscribed"] == 1
    r = await client.get(f"/v1/suppressions/{emails[0]}", headers=admin)
    assert r.status_code == 200 and r.json()["scope"] == "marketing"
    async with engine.connect() as conn:
        via = (
            await conn.execute(text("SELECT subtype FROM events WHERE type = 'unsubscribe'"))
        ).all()
    assert [v[0] for v in via] == ["mail"]

    # the same mail again (a new SNS message: the reader sent it twice): nothing more
    before = await snapshot(engine)
    r = await post(client, sns_signer.notification(received(token, in_address=False)))
    assert r.status_code == 200
    await drain_notifications(sessionmaker, 500, settings=sns_settings)
    after = await snapshot(engine)
    assert {k: v for k, v in after.items() if k != "notifications"} == {
        k: v for k, v in before.items() if k != "notifications"
    }


async def test_a_forged_or_unknown_token_changes_nothing(
    client, admin, engine, sessionmaker, sns_signer, sns_settings
) -> None:
    await seed_sent(client, admin, engine, ["ann@example.test"])
    before = await snapshot(engine)
    forged = make_token("not-our-key-" * 4, 1)
    unknown = make_token(sns_settings.secret_key, 999_999)  # genuine, no such message
    for token in (forged, unknown):
        r = await post(client, sns_signer.notification(received(token)))
        assert r.status_code == 200
    assert (await drain_notifications(sessionmaker, 500, settings=sns_settings)).notifications == 2
    after = await snapshot(engine)
    assert after["notifications"] == before["notifications"] + 2
    assert {k: v for k, v in after.items() if k != "notifications"} == {
        k: v for k, v in before.items() if k != "notifications"
    }
    # an unsigned one is refused at the door, as every notification
    unsigned = sns_signer.notification(received(make_token(sns_settings.secret_key, 1)))
    unsigned["Signature"] = unsigned["Signature"][::-1]
    assert (await post(client, unsigned)).status_code == 403


async def test_sent_mail_carries_the_mailto_only_when_configured(
    client, admin, engine, clean_standin, start_worker
) -> None:
    await seed_contacts(engine, 1)
    start_worker(MAILER_INBOUND_UNSUBSCRIBE_DOMAIN=INBOUND)
    campaign = await factories.campaign(client, admin)
    r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
    assert r.status_code == 202, r.text
    await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 120)
    (call,) = clean_standin.control.messages()
    headers = {h["Name"]: h["Value"] for h in call["Content"]["Simple"]["Headers"]}
    link, mailto = headers["List-Unsubscribe"].split(", ")
    token = re.fullmatch(r"<.*/unsubscribe/([^>]+)>", link).group(1)  # type: ignore[union-attr]
    assert mailto == f"<mailto:unsubscribe+{token}@{INBOUND}?subject=unsubscribe-{token}>"
