"""Auto-pause (SPEC 8): a campaign or a whole mail class past a threshold is paused within
the processing cycle of the event that crossed the line; transactional mail goes on."""

from __future__ import annotations

from sqlalchemy import text

from tests import factories
from tests.campaign.conftest import seed_contacts
from tests.reputation.helpers import (
    apply,
    campaign_for,
    campaign_status,
    sent_ids,
    stat,
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
    client, admin, engine, sessionmaker, settings, clean_standin, start_worker
):
    await seed_contacts(engine, 3000, prefix="user")
    await seed_contacts(engine, 300, prefix="tx")
    start_worker(MAILER_REGIONS="us-east-1=150", MAILER_SEND_BATCH_SIZE="100")
    marketing = await campaign_for(client, admin, "user")
    await wait_stat(engine, marketing, 600)

    # a stream of hard bounces, one notification per cycle, until the line is crossed
    ids = await sent_ids(engine, marketing, 200)
    reasons: list[str] = []
    applied = 0
    for message_id in ids:
        sent_before, hb_before = await _rollup_totals(engine, marketing)
        reasons = await apply(sessionmaker, settings, [(message_id, "hard_bounce")])
        applied += 1
        status, reason = await campaign_status(engine, marketing)
        if reasons:
            # paused in this very cycle, with the reason recorded
            assert status == "paused"
            assert reason == reasons[0] and "bounce rate" in reason and "5.00%" in reason
            assert hb_before + 1 > 0.05 * sent_before  # crossing the line now, at the latest
            break
        assert status == "sending", (applied, reason)
    assert reasons, "200 hard bounces never paused the campaign"
    assert applied >= 600 * 0.05  # not before the line: 5 % of at least 600 sends

    r = await client.get(f"/v1/campaigns/{marketing}", headers=admin)
    assert r.json()["status"] == "paused" and r.json()["paused_reason"].startswith("auto-pause")

    # transactional mail keeps flowing: a transactional campaign launched now completes
    tx = await campaign_for(client, admin, "tx", mail_class="transactional")
    done = await factories.wait_for_status(client, admin, tx, {"completed"}, 60)
    assert done["stats"]["sent"] == 300
    assert (await campaign_status(engine, marketing))[0] == "paused"
    assert await stat(engine, marketing) < 3000

    rep = (await client.get("/v1/reputation", headers=admin)).json()
    [row] = [c for c in rep["campaigns"] if c["id"] == marketing]
    assert row["status"] == "paused" and row["hard_bounces"] == applied
    [tx_row] = [c for c in rep["mail_classes"] if c["mail_class"] == "transactional"]
    assert tx_row["status"] == "ok" and tx_row["last_1h"]["sent"] == 300

    # resume is explicit and re-arms the check: the counts start again from the resume
    r = await client.post(f"/v1/campaigns/{marketing}/resume", headers=admin)
    assert r.status_code == 200 and r.json()["status"] == "sending"
    more = await sent_ids(engine, marketing, 5, offset=200)
    assert await apply(sessionmaker, settings, [(i, "hard_bounce") for i in more]) == []
    assert (await campaign_status(engine, marketing))[0] == "sending"


async def test_a_mail_class_over_its_24h_threshold_pauses_its_campaigns(
    client, admin, engine, sessionmaker, settings, clean_standin, start_worker
):
    await seed_contacts(engine, 1000, prefix="a")
    await seed_contacts(engine, 3000, prefix="b")
    await seed_contacts(engine, 300, prefix="tx")
    start_worker(MAILER_REGIONS="us-east-1=100", MAILER_SEND_BATCH_SIZE="100")
    # yesterday's campaign: 4.5 % hard bounces, under the threshold
    first = await campaign_for(client, admin, "a")
    await factories.wait_for_status(client, admin, first, {"completed"}, 90)
    assert (
        await apply(
            sessionmaker, settings, [(i, "hard_bounce") for i in await sent_ids(engine, first, 45)]
        )
        == []
    )

    # today's, and one scheduled for later: the class's 24 hours go past 5 % while the
    # sending campaign has too few sends (< 500) to be judged alone
    second = await campaign_for(client, admin, "b")
    later = await campaign_for(client, admin, "b", send_at="2099-01-01T00:00:00Z")
    sent = await wait_stat(engine, second, 150)
    assert sent < settings.auto_pause_min_sends
    need = int(0.05 * (1000 + sent + 200)) + 1 - 45
    assert need < sent
    reasons = await apply(
        sessionmaker, settings, [(i, "hard_bounce") for i in await sent_ids(engine, second, need)]
    )

    assert len(reasons) == 1 and "mail class marketing over 24 h" in reasons[0], reasons
    for cid in (second, later):
        status, reason = await campaign_status(engine, cid)
        assert status == "paused" and reason == reasons[0]
    assert await stat(engine, second) < settings.auto_pause_min_sends

    # transactional mail is not paused by marketing's numbers
    tx = await campaign_for(client, admin, "tx", mail_class="transactional")
    done = await factories.wait_for_status(client, admin, tx, {"completed"}, 60)
    assert done["stats"]["sent"] == 300

    rep = (await client.get("/v1/reputation", headers=admin)).json()
    classes = {c["mail_class"]: c for c in rep["mail_classes"]}
    assert classes["marketing"]["status"] == "paused"
    assert classes["transactional"]["status"] == "ok"
    async with engine.connect() as conn:
        logged = (
            await conn.execute(text("SELECT scope, campaigns, reason FROM auto_pauses"))
        ).all()
    assert [(r.scope, r.campaigns, r.reason) for r in logged] == [("mail_class", 2, reasons[0])]


async def test_mailbox_simulator_traffic_is_left_out(
    client, admin, engine, sessionmaker, settings, clean_standin, start_worker
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
                text("SELECT id FROM messages WHERE email LIKE '%@simulator.amazonses.com'")
            )
        ).all()
    await apply(sessionmaker, settings, [(r.id, "hard_bounce") for r in sim])
    assert (await _rollup_totals(engine, cid)) == (10, 0)
    rep = (await client.get("/v1/reputation", headers=admin)).json()
    [row] = rep["mail_classes"]
    assert row["last_24h"]["sent"] == 10 and row["last_24h"]["hard_bounces"] == 0
