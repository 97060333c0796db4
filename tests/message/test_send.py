"""Transactional messages through a real worker to the SES stand-in."""

from __future__ import annotations

import asyncio
import signal
import time
from email.header import decode_header, make_header
from email.utils import parseaddr

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.queues import TRANSACTIONAL_QUEUE
from tests import factories
from tests.campaign.conftest import recipients
from tests.fixtures.workers import wait_queues_idle

INLINE = {
    "to": "ada@example.test",
    "from_address": "hello@mailer.test",
    "subject": "Your code {{ data.code }}",
    "html": "<p>Code {{ data.code }}</p>",
    "data": {"code": "123"},
}
FINAL = {"sent", "suppressed", "failed", "cancelled", "delivered", "bounced", "complained"}


@pytest.fixture
async def tx(make_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {await make_key('transactional')}"}


async def wait_final(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    message_id: int,
    timeout: float = 30.0,  # noqa: ASYNC109 - a polling deadline
) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        body = (await client.get(f"/v1/messages/{message_id}", headers=headers)).json()
        if body["status"] in FINAL:
            return body
        await asyncio.sleep(0.1)
    raise AssertionError(f"message {message_id} not final after {timeout}s: {body}")


def _decoded(mailbox: str) -> tuple[str, str]:
    name, address = parseaddr(mailbox)
    return str(make_header(decode_header(name))), address


async def test_twenty_identical_requests_make_one_ses_call(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    engine: AsyncEngine,
    redis: Redis,
    clean_standin,
    start_worker,
) -> None:
    worker = start_worker()
    headers = {**tx, "Idempotency-Key": "receipt-42"}
    answers = await asyncio.gather(
        *(client.post("/v1/messages", headers=headers, json=INLINE) for _ in range(20))
    )
    assert {r.status_code for r in answers} == {202}
    [message_id] = {r.json()["id"] for r in answers}
    done = await wait_final(client, tx, message_id)
    assert done["status"] == "sent", worker.log()
    other = await client.post(
        "/v1/messages", headers=headers, json={**INLINE, "data": {"code": "999"}}
    )
    assert other.status_code == 409
    again = await client.post("/v1/messages", headers=headers, json=INLINE)
    assert again.status_code == 202 and again.json() == {"id": message_id, "status": "sent"}
    await wait_queues_idle(redis, (TRANSACTIONAL_QUEUE,))  # every job for it has run
    sent = clean_standin.control.messages()
    assert len(sent) == 1, worker.log()
    call = sent[0]
    assert call["MessageId"] == done["ses_message_id"]
    assert call["Content"]["Simple"]["Subject"]["Data"] == "Your code 123"
    assert {t["Name"]: t["Value"] for t in call["EmailTags"]} == {
        "mail_class": "transactional",
        "message_id": str(message_id),
    }
    assert call["ConfigurationSetName"] == "transactional"
    assert "Headers" not in call["Content"]["Simple"]  # no List-Unsubscribe unless asked


async def test_hard_bounce_suppressed_recipient_is_not_sent(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    engine: AsyncEngine,
    clean_standin,
    start_worker,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO suppressions (email, reason, scope, source)"
                " VALUES ('gone@example.test', 'hard bounce', 'all', 'bounce')"
            )
        )
    start_worker()
    r = await client.post("/v1/messages", headers=tx, json={**INLINE, "to": "Gone@Example.test"})
    ok = await client.post("/v1/messages", headers=tx, json=INLINE)
    gone = await wait_final(client, tx, r.json()["id"])
    assert gone["status"] == "suppressed"
    # the message says why, as the suppression list says it
    assert gone["error"].startswith("suppressed: hard bounce (scope all, since 20"), gone
    assert (await wait_final(client, tx, ok.json()["id"]))["status"] == "sent"
    assert set(recipients(clean_standin.control)) == {"ada@example.test"}


async def test_unsubscribed_or_marketing_suppressed_still_get_transactional_mail(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    admin: dict[str, str],
    engine: AsyncEngine,
    clean_standin,
    start_worker,
) -> None:
    await factories.contacts(client, admin, 1, prefix="quit")
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE contacts SET status = 'unsubscribed' WHERE email = 'quit0@example.test'")
        )
        await conn.execute(
            text(
                "INSERT INTO suppressions (email, reason, scope) VALUES"
                " ('complainer@example.test', 'complaint', 'marketing')"
            )
        )
    start_worker()
    ids = []
    for to in ("quit0@example.test", "complainer@example.test"):
        r = await client.post("/v1/messages", headers=tx, json={**INLINE, "to": to})
        ids.append(r.json()["id"])
    # the same recipients as marketing-class messages are held back
    for to in ("quit0@example.test", "complainer@example.test"):
        r = await client.post(
            "/v1/messages", headers=tx, json={**INLINE, "to": to, "mail_class": "marketing"}
        )
        ids.append(r.json()["id"])
    statuses = [(await wait_final(client, tx, i))["status"] for i in ids]
    assert statuses == ["sent", "sent", "suppressed", "suppressed"]
    assert recipients(clean_standin.control) == {
        "quit0@example.test": 1,
        "complainer@example.test": 1,
    }


async def test_batch_with_one_bad_item_sends_the_others(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    clean_standin,
    start_worker,
) -> None:
    start_worker()
    items = [{**INLINE, "to": f"b{i}@example.test", "idempotency_key": f"k{i}"} for i in range(5)]
    items[2] = {**items[2], "from_address": "Broken <nope>"}
    r = await client.post("/v1/messages/batch", headers=tx, json={"messages": items})
    got = r.json()["items"]
    assert [i["status_code"] for i in got] == [202, 202, 422, 202, 202]
    for item in got:
        if item["status_code"] == 202:
            assert (await wait_final(client, tx, item["id"]))["status"] == "sent"
    assert set(recipients(clean_standin.control)) == {
        "b0@example.test",
        "b1@example.test",
        "b3@example.test",
        "b4@example.test",
    }


async def test_display_names_reach_ses_encoded(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    admin: dict[str, str],
    clean_standin,
    start_worker,
) -> None:
    await factories.contacts(client, admin, 1, prefix="reader")
    campaign = await factories.campaign(
        client,
        admin,
        from_address="Acme News <News@Mailer.test>",
        reply_to='"Acme, Support" <help@mailer.test>',
    )
    start_worker()
    r = await client.post("/v1/campaigns/{}/send".format(campaign["id"]), headers=admin)
    assert r.status_code == 202
    m = await client.post(
        "/v1/messages",
        headers=tx,
        json={
            **INLINE,
            "to": "zoe@example.test",
            "from_address": "Zoë Café Ünïcode <hello@mailer.test>",
            "reply_to": "Støtte <support@mailer.test>",
        },
    )
    await wait_final(client, tx, m.json()["id"])
    await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 30)
    by_to = {c["Destination"]["ToAddresses"][0]: c for c in clean_standin.control.messages()}
    marketing, transactional = by_to["reader0@example.test"], by_to["zoe@example.test"]
    assert marketing["FromEmailAddress"] == "Acme News <news@mailer.test>"
    assert marketing["ReplyToAddresses"] == ['"Acme, Support" <help@mailer.test>']
    raw_from = transactional["FromEmailAddress"]
    assert raw_from.isascii() and raw_from.startswith("=?utf-8?")
    assert _decoded(raw_from) == ("Zoë Café Ünïcode", "hello@mailer.test")
    [raw_reply] = transactional["ReplyToAddresses"]
    assert raw_reply.isascii() and _decoded(raw_reply) == ("Støtte", "support@mailer.test")
    # no unsubscribe mailto: nothing receives mail there (no inbound unsubscribes)
    headers = {h["Name"]: h["Value"] for h in marketing["Content"]["Simple"]["Headers"]}
    assert "mailto:" not in headers["List-Unsubscribe"]


async def test_stored_template_tags_headers_and_data(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    admin: dict[str, str],
    clean_standin,
    start_worker,
) -> None:
    template = await factories.template(
        client,
        admin,
        subject="Receipt {{ data.order }} for {{ contact.email }}",
        html="<p>Thanks {{ contact.attributes.first_name | default('friend') }}</p>",
    )
    start_worker()
    r = await client.post(
        "/v1/messages",
        headers=tx,
        json={
            "to": "buyer@example.test",
            "from_address": "shop@mailer.test",
            "template_id": template["id"],
            "data": {"order": "A-7"},
            "tags": {"kind": "receipt"},
            "headers": {"X-Order": "A-7", "In-Reply-To": "<a@b>"},
        },
    )
    done = await wait_final(client, tx, r.json()["id"])
    assert done["status"] == "sent" and done["tags"] == {"kind": "receipt"}
    [call] = clean_standin.control.messages()
    simple = call["Content"]["Simple"]
    assert simple["Subject"]["Data"] == "Receipt A-7 for buyer@example.test"
    assert "Thanks friend" in simple["Body"]["Html"]["Data"]
    assert {h["Name"]: h["Value"] for h in simple["Headers"]} == {
        "X-Order": "A-7",
        "In-Reply-To": "<a@b>",
    }
    assert {t["Name"]: t["Value"] for t in call["EmailTags"]}["kind"] == "receipt"


async def test_render_error_fails_only_that_message(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    admin: dict[str, str],
    clean_standin,
    start_worker,
) -> None:
    """A message that rendered at accept but not at send (its contact lost the attribute
    meanwhile) fails alone, with the reason; the others are sent."""
    r = await client.put(
        "/v1/contacts/coded@example.test", headers=admin, json={"attributes": {"code": "x1"}}
    )
    assert r.status_code == 201
    bad = await client.post(
        "/v1/messages",
        headers=tx,
        json={
            **INLINE,
            "to": "coded@example.test",
            "subject": "{{ contact.attributes.code.upper() }}",
        },
    )
    assert bad.status_code == 202, bad.text
    r = await client.patch(
        "/v1/contacts/coded@example.test", headers=admin, json={"attributes": {"code": None}}
    )
    assert r.status_code == 200
    good = await client.post("/v1/messages", headers=tx, json=INLINE)
    start_worker()
    failed = await wait_final(client, tx, bad.json()["id"])
    assert failed["status"] == "failed" and "code" in failed["error"]
    assert (await wait_final(client, tx, good.json()["id"]))["status"] == "sent"


async def test_a_template_that_cannot_render_is_a_422_at_accept(
    client: httpx.AsyncClient, tx: dict[str, str], admin: dict[str, str], engine: AsyncEngine
) -> None:
    """An undefined variable is known when the message is accepted: a 422 naming the part
    and the variable, and nothing is queued (it was a 202, then a failure)."""
    r = await client.post(
        "/v1/messages", headers=tx, json={**INLINE, "html": "<p>{{ data.missing.deeper }}</p>"}
    )
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["details"][0]["path"] == ["body", "data"]
    assert error["message"].startswith("html: ") and "missing" in error["message"]
    assert "docs/templates.md" in error["message"]
    # the recipient's own attributes count: a contact that has it renders, others do not
    personal = {**INLINE, "subject": "Hi {{ contact.attributes.first_name }}"}
    await factories.contacts(client, admin, 1, prefix="named")  # named0: first_name Name0
    ok = await client.post(
        "/v1/messages", headers=tx, json={**personal, "to": "named0@example.test"}
    )
    assert ok.status_code == 202, ok.text
    stranger = await client.post("/v1/messages", headers=tx, json=personal)
    assert stranger.status_code == 422
    assert stranger.json()["error"]["message"].startswith("subject: ")
    # in a batch, only the item that cannot render is refused
    batch = await client.post(
        "/v1/messages/batch",
        headers=tx,
        json={"messages": [INLINE, {**INLINE, "subject": "{{ nothing_here }}"}]},
    )
    answers = batch.json()["items"]
    assert [a["status_code"] for a in answers] == [202, 422]
    assert answers[1]["error"]["details"][0]["path"] == ["body", "messages", 1, "data"]
    async with engine.connect() as conn:
        queued = await conn.scalar(text("SELECT count(*) FROM messages"))
    assert queued == 2  # the contact's message and the batch's good item


async def test_campaign_test_send(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    tx: dict[str, str],
    clean_standin,
    start_worker,
) -> None:
    await factories.contacts(client, admin, 3)
    template = await factories.template(
        client,
        admin,
        html="<p>{{ campaign.name }} for {{ data.who | default('all') }}</p>" + factories.FOOTER,
    )
    campaign = await factories.campaign(client, admin, template_id=template["id"], name="Autumn")
    start_worker()
    r = await client.post(
        f"/v1/campaigns/{campaign['id']}/test",
        headers=admin,
        json={"to": ["Boss@Example.test", "qa@example.test"], "data": {"who": "boss"}},
    )
    assert r.status_code == 202, r.text
    ids = [m["id"] for m in r.json()["messages"]]
    for message_id in ids:
        done = await wait_final(client, tx, message_id)
        assert done["status"] == "sent" and done["test_campaign_id"] == campaign["id"]
    calls = {c["Destination"]["ToAddresses"][0]: c for c in clean_standin.control.messages()}
    assert set(calls) == {"boss@example.test", "qa@example.test"}
    call = calls["boss@example.test"]
    assert "Autumn for boss" in call["Content"]["Simple"]["Body"]["Html"]["Data"]
    tags = {t["Name"]: t["Value"] for t in call["EmailTags"]}
    assert tags["test"] == "true" and "campaign_id" not in tags
    after = (await client.get(f"/v1/campaigns/{campaign['id']}", headers=admin)).json()
    assert after["status"] == "draft"
    assert all(v == 0 for v in after["stats"].values())
    too_many = await client.post(
        f"/v1/campaigns/{campaign['id']}/test",
        headers=admin,
        json={"to": [f"x{i}@example.test" for i in range(11)]},
    )
    assert too_many.status_code == 422
    personal = await factories.template(
        client, admin, html="<p>Hi {{ contact.attributes.first_name }}</p>" + factories.FOOTER
    )
    needs = await factories.campaign(client, admin, template_id=personal["id"])
    stranger = await client.post(
        f"/v1/campaigns/{needs['id']}/test", headers=admin, json={"to": ["stranger@example.test"]}
    )
    assert stranger.status_code == 422, stranger.text
    assert "stranger@example.test" in stranger.json()["error"]["message"]
    assert "first_name" in stranger.json()["error"]["message"]
    missing = await client.post(
        "/v1/campaigns/999999/test", headers=admin, json={"to": ["a@example.test"]}
    )
    assert missing.status_code == 404


async def test_lost_job_is_picked_up_by_the_reconciler(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    redis: Redis,
    clean_standin,
    start_worker,
) -> None:
    r = await client.post("/v1/messages", headers=tx, json=INLINE)
    await redis.flushdb()  # the job is gone; PostgreSQL still holds the message
    start_worker()
    done = await wait_final(client, tx, r.json()["id"], timeout=60)
    assert done["status"] == "sent"
    assert len(clean_standin.control.messages()) == 1


async def test_ses_pause_makes_transactional_mail_wait_not_fail(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    clean_standin,
    start_worker,
) -> None:
    from mailer.local.standin_client import fault

    clean_standin.control.set_faults([fault("paused", count=1)])
    start_worker()
    r = await client.post("/v1/messages", headers=tx, json=INLINE)
    done = await wait_final(client, tx, r.json()["id"], timeout=60)
    assert done["status"] == "sent"
    assert clean_standin.control.stats()["totals"]["faults"] == {"paused": 1}


async def test_a_throttled_transactional_call_is_made_again_at_once_not_requeued(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    settings,
    clean_standin,
    start_worker,
) -> None:
    """SES throttles the first two calls: the message's sender asks the limiter for
    another slot and calls again (the limiter slowed down), in the job that claimed it;
    it does not go back to the queue for the 0.5-1.5 s a campaign message waits."""
    from arq.connections import RedisSettings, create_pool

    from mailer.local.standin_client import fault

    clean_standin.control.set_faults([fault("throttle", count=2)])
    start_worker()
    r = await client.post("/v1/messages", headers=tx, json=INLINE)
    message_id = r.json()["id"]
    done = await wait_final(client, tx, message_id)
    assert done["status"] == "sent" and done["attempts"] == 1
    assert clean_standin.control.stats()["totals"]["faults"] == {"throttle": 2}
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    try:
        jobs = [
            j
            for j in await pool.all_job_results()
            if j.function == "send_messages" and message_id in j.args[0]
        ]
    finally:
        await pool.aclose()
    # one job claimed it (the reconciler may have enqueued another, which found it taken)
    assert [j.result for j in jobs if j.result["claimed"]] == [{"claimed": 1, "sent": 1}]


async def test_sigterm_records_transactional_calls_in_flight_and_hands_over_the_rest(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    engine: AsyncEngine,
    clean_standin,
    start_worker,
) -> None:
    control = clean_standin.control
    control.set_latency(500)  # calls in flight at the signal
    control.set_rates({"us-east-1": 10})  # and messages claimed, waiting for a slot
    stopped = start_worker()
    items = [{**INLINE, "to": f"t{i}@example.test"} for i in range(40)]
    r = await client.post("/v1/messages/batch", headers=tx, json={"messages": items})
    ids = [item["id"] for item in r.json()["items"]]
    await asyncio.to_thread(control.wait_for_sent, 3, 30)
    stopped.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(stopped.process.wait, 60)
    assert code == 0, stopped.log()
    assert "graceful_stop_timed_out" not in stopped.log()
    async with engine.connect() as conn:
        held = (
            await conn.execute(
                text("SELECT count(*) FROM messages WHERE status IN ('claimed', 'sending')")
            )
        ).scalar()
        sent = (
            await conn.execute(text("SELECT count(*) FROM messages WHERE status = 'sent'"))
        ).scalar()
    assert held == 0
    assert sent == control.sent() < len(ids)

    start_worker()
    for message_id in ids:
        assert (await wait_final(client, tx, message_id, timeout=60))["status"] == "sent"
    seen = recipients(control)
    assert len(seen) == len(ids) and max(seen.values()) == 1
    async with engine.connect() as conn:
        resent = (
            await conn.execute(text("SELECT count(*) FROM messages WHERE maybe_sent"))
        ).scalar()
    assert resent == 0
