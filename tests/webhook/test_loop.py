"""The loop closed with real processes: a `mailer worker` applies what the webhook stored,
and the next sends leave out what the feedback suppressed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

from sqlalchemy import text

from mailer.suppression.tokens import make_token
from tests import factories
from tests.campaign.invariants import assert_counters_add_up
from tests.fixtures.sns import ses_event
from tests.webhook.conftest import post

EMAILS = [
    "bounced@example.test",
    "complained@example.test",
    "unsubscribed@example.test",
    "fine@example.test",
]


async def _wait(predicate, timeout: float = 60.0, what: str = "") -> None:  # type: ignore[no-untyped-def]  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s: {what}")
        await asyncio.sleep(0.2)


async def _send(client, admin, mail_class: str) -> dict:  # type: ignore[no-untyped-def]
    campaign = await factories.campaign(
        client, admin, mail_class=mail_class, name=f"to {mail_class}"
    )
    r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
    assert r.status_code == 202, r.text
    return await factories.wait_for_status(client, admin, campaign["id"], {"completed"})


def _recipients(control, since: int) -> Counter[str]:  # type: ignore[no-untyped-def]
    return Counter(m["Destination"]["ToAddresses"][0] for m in control.messages(since=since))


async def test_feedback_stops_the_mail_it_should(
    client, admin, engine, settings, sns_settings, sns_signer, clean_standin, start_worker
) -> None:
    control = clean_standin.control
    for email in EMAILS:
        r = await client.put(f"/v1/contacts/{email}", headers=admin, json={})
        assert r.status_code == 201
    worker = start_worker(MAILER_EVENTS_RECONCILE_SECONDS="30")
    first = await _send(client, admin, "marketing")
    assert first["stats"]["sent"] == 4
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT email, id, ses_message_id FROM messages WHERE campaign_id = :c"),
                {"c": first["id"]},
            )
        ).all()
    ses = {r.email: r.ses_message_id for r in rows}
    ids = {r.email: r.id for r in rows}

    bounce = ses_event("Bounce", ses["bounced@example.test"], ["bounced@example.test"])
    complaint = ses_event("Complaint", ses["complained@example.test"], ["complained@example.test"])
    for payload in (bounce, complaint):
        assert (await post(client, sns_signer.notification(payload))).status_code == 200
    token = make_token(settings.secret_key, ids["unsubscribed@example.test"])
    r = await client.post(
        f"/unsubscribe/{token}",
        content="List-Unsubscribe=One-Click",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 200

    async def applied() -> bool:
        async with engine.connect() as conn:
            left = (
                await conn.execute(
                    text("SELECT count(*) FROM sns_notifications WHERE processed_at IS NULL")
                )
            ).scalar_one()
        return left == 0

    # the webhook enqueued the events job; the reconciler (30 s) is not what does it
    await _wait(applied, 20, f"events worker never processed the notifications\n{worker.log()}")
    stats = (await client.get(f"/v1/campaigns/{first['id']}", headers=admin)).json()["stats"]
    assert (stats["bounced"], stats["complained"], stats["unsubscribed"]) == (1, 1, 1)
    await assert_counters_add_up(engine, stats, first["id"])

    since = control.stats()["last_seq"]
    marketing = await _send(client, admin, "marketing")
    assert _recipients(control, since) == Counter({"fine@example.test": 1})
    assert marketing["stats"]["recipients"] == 1
    # the bounced contact was left out at launch (suppressed; the unsubscribed ones are not
    # eligible): one recipient sent, one suppressed, progress 100 % (it was 200 %)
    assert marketing["stats"]["suppressed"] == 1 and marketing["stats"]["progress"] == 1.0
    await assert_counters_add_up(engine, marketing["stats"], marketing["id"])

    since = control.stats()["last_seq"]
    await _send(client, admin, "transactional")
    # complaints and unsubscribes stop marketing mail only; a permanent bounce stops all
    assert _recipients(control, since) == Counter(
        {"complained@example.test": 1, "unsubscribed@example.test": 1, "fine@example.test": 1}
    )


async def test_notifications_stored_while_redis_was_lost_are_processed(
    client, admin, engine, redis, sns_signer, clean_standin, start_worker
) -> None:
    r = await client.put("/v1/contacts/gone@example.test", headers=admin, json={})
    assert r.status_code == 201
    payload = ses_event("Bounce", "0100-lost", ["gone@example.test"])
    assert (await post(client, sns_signer.notification(payload))).status_code == 200
    await redis.flushdb()  # the job (and the wake flag) are lost; the row is not
    start_worker(MAILER_EVENTS_RECONCILE_SECONDS="1", MAILER_EVENTS_UNMATCHED_WAIT_SECONDS="0")

    async def suppressed() -> bool:
        got = await client.get("/v1/suppressions/gone@example.test", headers=admin)
        return got.status_code == 200

    await _wait(suppressed, 30, "the reconciler never processed the stored notification")
