"""Auto-pause: a campaign or a whole mail class past a threshold is paused within
the processing cycle of the event that crossed the line; transactional mail goes on."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from mailer.local.standin_client import fault
from tests import factories
from tests.campaign.conftest import seed_contacts
from tests.reputation.helpers import (
    apply,
    campaign_for,
    campaign_status,
    notify,
    sent_messages,
    stat,
    wait_processed,
    wait_stat,
)


async def _rollup_totals(engine, campaign_id: int) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT COALESCE(sum(sent), 0) AS sent, COALESCE(sum(hard_bounces), 0) AS hb"
                    " FROM reputation_minutes WHERE campaign_id = :id"
                ),
                {"id": campaign_id},
            )
        ).one()
    return int(row.sent), int(row.hb)


async def test_hard_bounces_pause_the_campaign_in_the_cycle_that_crosses_the_line(
    client, admin, engine, sessionmaker, settings, sns_signer, clean_standin, start_worker
):
    await seed_contacts(engine, 3000, prefix="user")
    await seed_contacts(engine, 300, prefix="tx")
    start_worker(MAILER_REGIONS="us-east-1=100", MAILER_SEND_BATCH_SIZE="100")
    marketing = await campaign_for(client, admin, "user")
    await wait_stat(engine, marketing, 600)
    # SES throttles from now on: the campaign stays sending, its count of sends stays put
    clean_standin.control.set_faults([fault("throttle")])
    await asyncio.sleep(1.5)

    # a stream of hard bounces as SNS delivers them, each processed by the events worker
    # before the next: one processing cycle per notification
    bounced = 0
    reason = None
    for sid, email in await sent_messages(engine, marketing, 300):
        await wait_processed(engine, [await notify(client, sns_signer, "Bounce", sid, email)])
        bounced += 1
        status, reason = await campaign_status(engine, marketing)
        if status == "paused":
            break
        assert status == "sending"
        # not paused: then the numbers were not over the line when this cycle checked
        # them (more sends since only lower the rate)
        sent, hard = await _rollup_totals(engine, marketing)
        assert hard == bounced and hard <= 0.05 * sent, (hard, sent)
    assert reason is not None and reason.startswith("auto-pause: campaign bounce rate")
    assert "over the 5.00% threshold" in reason and f"({bounced} hard bounces" in reason
    sent_then = int(reason.rsplit(" in ", 1)[1].split()[0])
    assert sent_then == await stat(engine, marketing) >= 600
    # the very bounce that crossed 5 % paused it, not a later one
    assert bounced == int(0.05 * sent_then) + 1
    clean_standin.control.clear_faults()

    r = await client.get(f"/v1/campaigns/{marketing}", headers=admin)
    assert r.json()["status"] == "paused" and r.json()["paused_reason"] == reason
    assert r.json()["stats"]["bounced"] == bounced

    # transactional mail keeps flowing: a transactional campaign launched now completes
    tx = await campaign_for(client, admin, "tx", mail_class="transactional")
    done = await factories.wait_for_status(client, admin, tx, {"completed"}, 60)
    assert done["stats"]["sent"] == 300
    assert (await campaign_status(engine, marketing))[0] == "paused"
    assert await stat(engine, marketing) < 3000

    rep = (await client.get("/v1/reputation", headers=admin)).json()
    [row] = [c for c in rep["campaigns"] if c["id"] == marketing]
    assert row["status"] == "paused" and row["hard_bounces"] == bounced
    [tx_row] = [c for c in rep["mail_classes"] if c["mail_class"] == "transactional"]
    assert tx_row["status"] == "ok" and tx_row["last_1h"]["sent"] == 300

    # resume is explicit and re-arms the check: the counts start again from the resume
    r = await client.post(f"/v1/campaigns/{marketing}/resume", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "sending"
    more = await sent_messages(engine, marketing, 5, offset=300)
    await wait_processed(
        engine, [await notify(client, sns_signer, "Bounce", sid, email) for sid, email in more]
    )
    assert (await campaign_status(engine, marketing))[0] == "sending"


async def test_a_mail_class_over_its_24h_threshold_pauses_its_campaigns(
    client, admin, engine, sessionmaker, settings, sns_signer, clean_standin, start_worker
):
    await seed_contacts(engine, 1000, prefix="a")
    await seed_contacts(engine, 3000, prefix="b")
    await seed_contacts(engine, 300, prefix="tx")
    start_worker(MAILER_REGIONS="us-east-1=100", MAILER_SEND_BATCH_SIZE="100")

    async def bounce(campaign_id: int, n: int) -> None:
        ids = [
            await notify(client, sns_signer, "Bounce", sid, email)
            for sid, email in await sent_messages(engine, campaign_id, n)
        ]
        await wait_processed(engine, ids)

    # yesterday's campaign: 4.5 % hard bounces, under the threshold
    first = await campaign_for(client, admin, "a")
    await factories.wait_for_status(client, admin, first, {"completed"}, 90)
    await bounce(first, 45)
    assert await apply(sessionmaker, settings, []) == []
    assert (await _rollup_totals(engine, first)) == (1000, 45)

    # today's, and one scheduled for later: the class's 24 hours go past 5 % while the
    # sending campaign has too few sends (< 500) to be judged alone
    second = await campaign_for(client, admin, "b")
    later = await campaign_for(client, admin, "b", send_at="2099-01-01T00:00:00Z")
    await wait_stat(engine, second, 150)
    clean_standin.control.set_faults([fault("throttle")])  # its sends stay put from here
    await asyncio.sleep(1.5)
    sent = await stat(engine, second)
    assert sent < settings.auto_pause_min_sends
    need = int(0.05 * (1000 + sent)) + 1 - 45
    assert 0 < need < sent
    await bounce(second, need)

    async with engine.connect() as conn:
        logged = (
            await conn.execute(text("SELECT scope, campaigns, reason FROM auto_pauses"))
        ).all()
    assert [(r.scope, r.campaigns) for r in logged] == [("mail_class", 2)], logged
    reason = logged[0].reason
    assert reason.startswith("auto-pause: mail class marketing over 24 h: bounce rate")
    for cid in (second, later):
        assert await campaign_status(engine, cid) == ("paused", reason)
    assert await stat(engine, second) < settings.auto_pause_min_sends

    # transactional mail is not paused by marketing's numbers
    clean_standin.control.clear_faults()
    tx = await campaign_for(client, admin, "tx", mail_class="transactional")
    done = await factories.wait_for_status(client, admin, tx, {"completed"}, 60)
    assert done["stats"]["sent"] == 300

    rep = (await client.get("/v1/reputation", headers=admin)).json()
    classes = {c["mail_class"]: c for c in rep["mail_classes"]}
    assert classes["marketing"]["status"] == "paused"
    assert classes["marketing"]["last_24h"]["hard_bounces"] == 45 + need
    assert classes["transactional"]["status"] == "ok"


async def test_mailbox_simulator_traffic_is_left_out(
    client, admin, engine, sessionmaker, settings, sns_signer, clean_standin, start_worker
):
    await seed_contacts(engine, 10, prefix="sim")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO contacts (email) VALUES ('sim-bounce@simulator.amazonses.com'),"
                " ('sim-success@simulator.amazonses.com')"
            )
        )
    start_worker()
    cid = await campaign_for(client, admin, "sim")
    done = await factories.wait_for_status(client, admin, cid, {"completed"}, 60)
    assert done["stats"]["sent"] == 12
    assert (await _rollup_totals(engine, cid))[0] == 10
    async with engine.connect() as conn:
        sim = (
            await conn.execute(
                text(
                    "SELECT id, ses_message_id, email FROM messages"
                    " WHERE email LIKE '%@simulator.amazonses.com'"
                )
            )
        ).all()
    assert len(sim) == 2
    await wait_processed(
        engine, [await notify(client, sns_signer, "Bounce", r.ses_message_id, r.email) for r in sim]
    )
    assert (await _rollup_totals(engine, cid)) == (10, 0)
    # the same through the by-message-id entry point
    await apply(sessionmaker, settings, [(r.id, "hard_bounce") for r in sim])
    assert (await _rollup_totals(engine, cid)) == (10, 0)
    rep = (await client.get("/v1/reputation", headers=admin)).json()
    [row] = rep["mail_classes"]
    assert row["last_24h"]["sent"] == 10 and row["last_24h"]["hard_bounces"] == 0
