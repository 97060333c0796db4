"""Every SES event type, in both formats, SV1 and SV2, with and without Subject: each takes
effect once, also delivered twice or out of order."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from tests.fixtures.sns import EVENT_TYPES, NOTIFICATION_TYPES, Signer, ses_event
from tests.webhook.conftest import post, process, seed_sent, snapshot, stats

FORMATS = [("event", k) for k in EVENT_TYPES] + [("notification", k) for k in NOTIFICATION_TYPES]

# what one event of each type does to a message that SES accepted
EXPECTED = {
    "Send": ("sent", {}),
    "Reject": ("failed", {"failed": 1}),
    "Bounce": ("bounced", {"bounced": 1}),
    "Complaint": ("complained", {"complained": 1}),
    "Delivery": ("delivered", {"delivered": 1}),
    "Open": ("sent", {"opened": 1}),
    "Click": ("sent", {"clicked": 1}),
    "Rendering Failure": ("failed", {"failed": 1}),
    "DeliveryDelay": ("sent", {}),
    "Subscription": ("sent", {"unsubscribed": 1}),
}
COUNTERS = ("failed", "bounced", "complained", "delivered", "opened", "clicked", "unsubscribed")


async def _message(engine, email: str) -> tuple[str, str | None]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, error FROM messages WHERE email = :e"), {"e": email}
            )
        ).one()
    return row[0], row[1]


async def _scalar(engine, sql: str, **params: object) -> object:
    async with engine.connect() as conn:
        return (await conn.execute(text(sql), params)).scalar_one_or_none()


@pytest.mark.parametrize(("fmt", "kind"), FORMATS)
@pytest.mark.parametrize(("version", "subject"), [("1", None), ("2", "Amazon SES Email Event")])
async def test_each_event_takes_effect_once(
    client, admin, engine, sessionmaker, sns_signer: Signer, fmt, kind, version, subject
) -> None:
    email = "reader@example.test"
    campaign_id, ses = await seed_sent(client, admin, engine, [email])
    payload = ses_event(kind, ses[email], [email], fmt=fmt)
    message = sns_signer.notification(payload, version=version, subject=subject)
    assert (await post(client, message)).status_code == 200
    assert await process(sessionmaker) == 1
    status, error = await _message(engine, email)
    want_status, want_counts = EXPECTED[kind]
    assert status == want_status
    counts = await stats(client, admin, campaign_id)
    assert {c: counts[c] for c in COUNTERS} == {c: want_counts.get(c, 0) for c in COUNTERS}
    if kind in ("Reject", "Rendering Failure"):
        assert error
    after_once = await snapshot(engine)

    # delivered twice by SNS (same MessageId), and processed again: nothing more happens
    assert (await post(client, message)).json()["stored"] is False
    assert await process(sessionmaker) == 0
    assert await snapshot(engine) == after_once
    # the same event again under a new SNS MessageId (SNS at-least-once, or the other
    # format): stored as a notification, but no new event and no effect
    again = sns_signer.notification(payload, version="2" if version == "1" else "1")
    assert (await post(client, again)).json()["stored"] is True
    assert await process(sessionmaker) == 1
    now = await snapshot(engine)
    assert {k: v for k, v in now.items() if k != "notifications"} == {
        k: v for k, v in after_once.items() if k != "notifications"
    }


async def test_permanent_bounce_suppresses_for_every_class(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    emails = ["one@example.test", "two@example.test", "Three@Example.test"]
    _, ses = await seed_sent(client, admin, engine, [e.lower() for e in emails])
    # one bounce naming every recipient (as SES does for a multi-recipient message)
    payload = ses_event("Bounce", ses["one@example.test"], emails)
    assert (await post(client, sns_signer.notification(payload))).status_code == 200
    await process(sessionmaker)
    for email in emails:
        r = await client.get(f"/v1/suppressions/{email}", headers=admin)
        assert r.status_code == 200, r.text
        assert r.json()["scope"] == "all"
        assert r.json()["reason"] == "permanent bounce: General"
    assert await _scalar(engine, "SELECT count(*) FROM events WHERE type = 'bounce'") == 3


async def test_transient_bounces_suppress_after_three_in_30_days(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    email = "full@example.test"
    _, ses = await seed_sent(client, admin, engine, [email])
    old = datetime.now(UTC) - timedelta(days=31)
    stale = ses_event(
        "Bounce", ses[email], [email], bounce_type="Transient", at=old, feedback_id="fb-old"
    )
    # SNS's timestamp is fresh; the bounce itself is from 31 days ago
    await post(client, sns_signer.notification(stale))
    for i in range(2):
        await post(
            client,
            sns_signer.notification(
                ses_event(
                    "Bounce", ses[email], [email], bounce_type="Transient", feedback_id=f"fb-{i}"
                )
            ),
        )
        await process(sessionmaker)
        r = await client.get(f"/v1/suppressions/{email}", headers=admin)
        assert r.status_code == 404, f"suppressed after {i + 1} transient bounces in 30 days"
    await post(
        client,
        sns_signer.notification(
            ses_event("Bounce", ses[email], [email], bounce_type="Undetermined", feedback_id="fb-3")
        ),
    )
    await process(sessionmaker)
    r = await client.get(f"/v1/suppressions/{email}", headers=admin)
    assert r.status_code == 200
    assert r.json() | {"created_at": None} == {
        "email": email,
        "reason": "transient bounces: 3 within 30 days",
        "scope": "all",
        "source": "bounce",
        "created_at": None,
    }


async def test_complaint_suppresses_marketing_and_unsubscribes(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    email = "angry@example.test"
    _, ses = await seed_sent(client, admin, engine, [email])
    await post(client, sns_signer.notification(ses_event("Complaint", ses[email], [email])))
    await process(sessionmaker)
    suppression = (await client.get(f"/v1/suppressions/{email}", headers=admin)).json()
    assert (suppression["scope"], suppression["source"]) == ("marketing", "complaint")
    contact = (await client.get(f"/v1/contacts/{email}", headers=admin)).json()
    assert contact["status"] == "unsubscribed"
    assert contact["suppressed"] is True
    # the status change is recorded with its source
    changes = await _scalar(
        engine,
        "SELECT string_agg(s.status || ':' || s.source, ',') FROM contact_status_changes s"
        " JOIN contacts c ON c.id = s.contact_id WHERE c.email = :e",
        e=email,
    )
    assert changes == "unsubscribed:complaint"


async def test_notifications_only_widen_a_scope(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    email = "x@example.test"
    _, ses = await seed_sent(client, admin, engine, [email])
    await post(client, sns_signer.notification(ses_event("Complaint", ses[email], [email])))
    await process(sessionmaker)
    await post(client, sns_signer.notification(ses_event("Bounce", ses[email], [email])))
    await process(sessionmaker)
    assert (await client.get(f"/v1/suppressions/{email}", headers=admin)).json()["scope"] == "all"
    # a later complaint (another message) never narrows it back to marketing
    _, ses2 = await seed_sent(client, admin, engine, [email])
    await post(client, sns_signer.notification(ses_event("Complaint", ses2[email], [email])))
    await process(sessionmaker)
    assert (await client.get(f"/v1/suppressions/{email}", headers=admin)).json()["scope"] == "all"


@pytest.mark.parametrize("seed", range(4))
async def test_out_of_order_ends_the_same(
    client, admin, engine, sessionmaker, sns_signer, seed: int
) -> None:
    """Delivery, Open, Click, Bounce and Complaint in any order, some twice, in one batch or
    many: the message ends complained, each counter once."""
    email = "late@example.test"
    campaign_id, ses = await seed_sent(client, admin, engine, [email])
    kinds = ["Send", "Delivery", "Open", "Click", "Bounce", "Complaint"]
    messages = [sns_signer.notification(ses_event(k, ses[email], [email])) for k in kinds]
    rng = random.Random(seed)
    order = messages + rng.sample(messages, 3)  # some delivered twice
    rng.shuffle(order)
    batch = seed % 2 == 0
    for message in order:
        assert (await post(client, message)).status_code == 200
        if not batch:
            await process(sessionmaker)
    await process(sessionmaker)
    assert (await _message(engine, email))[0] == "complained"
    counts = await stats(client, admin, campaign_id)
    assert {c: counts[c] for c in COUNTERS} == {
        "failed": 0,
        "bounced": 1,
        "complained": 1,
        "delivered": 1,
        "opened": 1,
        "clicked": 1,
        "unsubscribed": 0,
    }
    assert await _scalar(engine, "SELECT count(*) FROM events") == len(kinds)


async def test_late_delivery_never_overwrites_a_bounce(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    email = "b@example.test"
    _, ses = await seed_sent(client, admin, engine, [email])
    await post(client, sns_signer.notification(ses_event("Bounce", ses[email], [email])))
    await process(sessionmaker)
    await post(client, sns_signer.notification(ses_event("Delivery", ses[email], [email])))
    await post(client, sns_signer.notification(ses_event("Open", ses[email], [email])))
    await process(sessionmaker)
    assert (await _message(engine, email))[0] == "bounced"


async def test_opens_count_messages_not_events(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    email = "o@example.test"
    campaign_id, ses = await seed_sent(client, admin, engine, [email])
    base = datetime.now(UTC)
    for i in range(3):
        await post(
            client,
            sns_signer.notification(
                ses_event("Open", ses[email], [email], at=base + timedelta(seconds=i))
            ),
        )
        await post(
            client,
            sns_signer.notification(
                ses_event("Click", ses[email], [email], link=f"https://example.test/{i}")
            ),
        )
    await process(sessionmaker)
    counts = await stats(client, admin, campaign_id)
    assert (counts["opened"], counts["clicked"]) == (1, 1)
    assert await _scalar(engine, "SELECT count(*) FROM events WHERE type = 'open'") == 3
    assert await _scalar(engine, "SELECT count(*) FROM events WHERE type = 'click'") == 3


async def test_unknown_message_id_is_kept_and_counted(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    from mailer.webhook.tasks import drain_notifications

    await post(
        client,
        sns_signer.notification(ses_event("Bounce", "0100-not-ours", ["stranger@example.test"])),
    )
    # young: put off, as the send's outcome may not have reached the database yet
    report = await drain_notifications(sessionmaker, 500)
    assert (report.notifications, report.deferred, report.stored) == (0, 1, 0)
    assert await _scalar(engine, "SELECT count(*) FROM events") == 0
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE sns_notifications SET retry_at = NULL,"
                " received_at = now() - interval '61 seconds'"
            )
        )
    report = await drain_notifications(sessionmaker, 500)
    assert (report.notifications, report.stored, report.unmatched, report.errors) == (1, 1, 1, 0)
    assert (
        await _scalar(
            engine, "SELECT count(*) FROM events WHERE message_id IS NULL AND type = 'bounce'"
        )
        == 1
    )
    # the address is still suppressed: the bounce is about it, whoever sent the mail
    assert (
        await client.get("/v1/suppressions/stranger@example.test", headers=admin)
    ).status_code == 200
    assert (
        await _scalar(
            engine,
            "SELECT count(*) FROM sns_notifications"
            " WHERE processed_at IS NOT NULL AND error IS NULL",
        )
        == 1
    )


async def test_an_event_ahead_of_its_send_record_waits_for_it(
    client, admin, engine, sessionmaker, sns_signer
) -> None:
    """SES can report a delivery before the worker has recorded the send's message id."""
    from mailer.webhook.tasks import drain_notifications

    email = "quick@example.test"
    campaign_id, ses = await seed_sent(client, admin, engine, [email])
    async with engine.begin() as conn:  # the outcome not recorded yet
        await conn.execute(text("UPDATE messages SET ses_message_id = NULL, status = 'sending'"))
    await post(client, sns_signer.notification(ses_event("Delivery", ses[email], [email])))
    assert (await drain_notifications(sessionmaker, 500)).deferred == 1
    assert (
        await drain_notifications(sessionmaker, 500)
    ).deferred == 0  # not claimed again before retry_at
    async with engine.begin() as conn:  # the worker records the send
        await conn.execute(
            text("UPDATE messages SET ses_message_id = :s, status = 'sent'"), {"s": ses[email]}
        )
        await conn.execute(text("UPDATE sns_notifications SET retry_at = now()"))
    report = await drain_notifications(sessionmaker, 500)
    assert (report.notifications, report.stored, report.unmatched) == (1, 1, 0)
    assert (await _message(engine, email))[0] == "delivered"
    assert (await stats(client, admin, campaign_id))["delivered"] == 1


async def test_unreadable_message_is_kept_with_its_error(
    client, engine, sessionmaker, sns_signer
) -> None:
    await post(client, sns_signer.notification("this is not JSON", subject="hello"))
    await post(client, sns_signer.notification({"eventType": "Telepathy", "mail": {}}))
    await post(client, sns_signer.notification(ses_event("Delivery", "0100-x", ["a@b.test"])))
    from mailer.webhook.tasks import drain_notifications

    report = await drain_notifications(sessionmaker, 500, unmatched_wait=0)
    assert (report.notifications, report.errors, report.stored) == (3, 2, 1)
    assert (
        await _scalar(engine, "SELECT count(*) FROM sns_notifications WHERE processed_at IS NULL")
        == 0
    )
    assert (
        await _scalar(engine, "SELECT count(*) FROM sns_notifications WHERE error IS NOT NULL") == 2
    )


async def test_a_nul_in_a_bounce_does_not_lose_it(
    client, admin, engine, sessionmaker, sns_signer: Signer
) -> None:
    """A bounce whose diagnostic holds a NUL (\\u0000 in the SES JSON, which jsonb
    refuses) still bounces the message and suppresses the address."""
    email = "reader@example.test"
    _, ses = await seed_sent(client, admin, engine, [email])
    payload = ses_event("Bounce", ses[email], [email])
    payload["bounce"]["bouncedRecipients"][0]["diagnosticCode"] = "smtp; 550 no\u0000such user"
    assert (await post(client, sns_signer.notification(payload))).status_code == 200
    assert await process(sessionmaker) == 1
    assert (await _message(engine, email))[0] == "bounced"
    assert await _scalar(engine, "SELECT count(*) FROM suppressions WHERE email = :e", e=email) == 1
    assert (
        await _scalar(engine, "SELECT count(*) FROM sns_notifications WHERE error IS NOT NULL") == 0
    )
    diagnostic = await _scalar(
        engine, "SELECT data::text FROM events WHERE type = 'bounce' AND email = :e", e=email
    )
    assert "no\ufffdsuch user" in str(diagnostic)


@pytest.mark.parametrize("kind", NOTIFICATION_TYPES)
async def test_the_same_event_in_both_formats_counts_once(
    client, admin, engine, sessionmaker, sns_signer, kind
) -> None:
    """A topic that gets identity notifications and event publishing sees each event twice."""
    email = "both@example.test"
    campaign_id, ses = await seed_sent(client, admin, engine, [email])
    at = datetime.now(UTC)
    for fmt in ("notification", "event"):
        payload = ses_event(kind, ses[email], [email], fmt=fmt, at=at, feedback_id="fb-1")
        assert (await post(client, sns_signer.notification(payload))).json()["stored"] is True
        await process(sessionmaker)
    assert await _scalar(engine, "SELECT count(*) FROM events") == 1
    counts = await stats(client, admin, campaign_id)
    assert sum(counts[c] for c in COUNTERS) == 1
