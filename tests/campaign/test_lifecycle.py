"""Campaign lifecycle with a real worker: illegal transitions, pause/resume, cancel, send_at."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

from mailer.local.standin_client import fault
from tests import factories
from tests.campaign.conftest import launch, recipients, seed_contacts, wait_sent
from tests.campaign.invariants import assert_counters_add_up

ACTIVE = {"queued", "claimed", "sending"}


async def _action(client, admin, campaign_id: int, action: str):  # type: ignore[no-untyped-def]
    return await client.post(f"/v1/campaigns/{campaign_id}/{action}", headers=admin)


async def test_illegal_transitions_are_409(client, admin, engine, clean_standin, start_worker):
    await seed_contacts(engine, 5)
    campaign = await factories.campaign(client, admin)
    cid = campaign["id"]
    for action in ("pause", "resume"):
        r = await _action(client, admin, cid, action)
        assert r.status_code == 409, (action, r.text)
        assert r.json()["error"]["code"] and "draft" in r.json()["error"]["message"]

    r = await _action(client, admin, cid, "send")
    assert r.status_code == 202 and r.json()["status"] == "sending"
    for action in ("send", "resume"):
        r = await _action(client, admin, cid, action)
        assert r.status_code == 409, (action, r.text)

    start_worker()
    await factories.wait_for_status(client, admin, cid, {"completed"}, 30)
    for action in ("send", "pause", "resume", "cancel"):
        r = await _action(client, admin, cid, action)
        assert r.status_code == 409, (action, r.text)
    r = await client.post("/v1/campaigns/999999/pause", headers=admin)
    assert r.status_code == 404


async def test_pause_stops_ses_calls_within_2s_and_resume_sends_the_rest_once(
    client, admin, engine, clean_standin, start_worker
):
    control = clean_standin.control
    n = 600
    emails = await seed_contacts(engine, n)
    start_worker(MAILER_REGIONS="us-east-1=150", MAILER_SEND_BATCH_SIZE="100")
    campaign = await launch(client, admin)
    cid = campaign["id"]

    await wait_sent(control, 150)
    r = await _action(client, admin, cid, "pause")
    paused_at = time.monotonic()
    assert r.status_code == 200 and r.json()["status"] == "paused", r.text
    assert r.json()["paused_reason"]

    await asyncio.sleep(3.5)
    late = [c for c in control.calls() if c["t"] > paused_at + 2.0]
    assert late == [], f"{len(late)} SES calls later than 2 s after the pause"
    sent_while_paused = control.sent()
    assert sent_while_paused < n
    body = (await client.get(f"/v1/campaigns/{cid}", headers=admin)).json()
    assert body["status"] == "paused"
    # the work went back to the queue, not lost, and nothing is held
    messages = await factories.all_messages(client, admin, cid)
    by_status: dict[str, int] = {}
    for m in messages:
        by_status[m["status"]] = by_status.get(m["status"], 0) + 1
    assert by_status.get("sent", 0) == sent_while_paused
    assert by_status.get("sent", 0) + by_status.get("queued", 0) == n, by_status

    r = await _action(client, admin, cid, "resume")
    assert r.status_code == 200 and r.json()["status"] == "sending", r.text
    done = await factories.wait_for_status(client, admin, cid, {"completed"}, 30)
    seen = recipients(control)
    assert set(seen) == set(emails)
    assert max(seen.values()) == 1
    assert done["stats"]["sent"] == n and done["stats"]["resent"] == 0
    await assert_counters_add_up(engine, done["stats"], cid)


async def test_cancel_stops_sending_and_cancels_the_rest(
    client, admin, engine, clean_standin, start_worker
):
    control = clean_standin.control
    n = 600
    await seed_contacts(engine, n)
    start_worker(MAILER_REGIONS="us-east-1=150", MAILER_SEND_BATCH_SIZE="100")
    campaign = await launch(client, admin)
    cid = campaign["id"]

    await wait_sent(control, 100)
    # calls under way at the cancel come back as server errors, later: their retries
    # must not wait forever in the queue of a cancelled campaign
    control.set_latency(300)
    control.set_faults([fault("error500")])
    await asyncio.sleep(0.1)
    r = await _action(client, admin, cid, "cancel")
    cancelled_at = time.monotonic()
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text

    await asyncio.sleep(3)
    assert [c for c in control.calls() if c["t"] > cancelled_at + 2.0] == []
    body = (await client.get(f"/v1/campaigns/{cid}", headers=admin)).json()
    assert body["status"] == "cancelled" and body["finished_at"]
    messages = await factories.all_messages(client, admin, cid)
    statuses = {m["status"] for m in messages}
    assert statuses <= {"sent", "cancelled"}, statuses
    sent = [m for m in messages if m["status"] == "sent"]
    assert len(sent) == control.sent() < n
    assert body["stats"]["sent"] == len(sent) and body["stats"]["queued"] == 0
    assert body["stats"]["cancelled"] == n - len(sent)
    await assert_counters_add_up(engine, body["stats"], cid)
    assert set(recipients(control)) == {m["email"] for m in sent}
    r = await _action(client, admin, cid, "resume")
    assert r.status_code == 409


async def test_send_at_in_the_future_is_scheduled_then_starts_by_itself(
    client, admin, engine, clean_standin, start_worker
):
    control = clean_standin.control
    emails = await seed_contacts(engine, 20)
    send_at = datetime.now(UTC) + timedelta(seconds=3)
    campaign = await factories.campaign(client, admin, send_at=send_at.isoformat())
    cid = campaign["id"]
    start_worker()
    r = await _action(client, admin, cid, "send")
    assert r.status_code == 202 and r.json()["status"] == "scheduled", r.text

    await asyncio.sleep(1.5)
    assert control.sent() == 0
    body = (await client.get(f"/v1/campaigns/{cid}", headers=admin)).json()
    assert body["status"] == "scheduled"

    done = await factories.wait_for_status(client, admin, cid, {"completed"}, 30)
    assert done["stats"]["sent"] == 20
    first_call = min(m["time"] for m in control.messages())
    assert first_call >= send_at.timestamp() - 0.05
    assert set(recipients(control)) == set(emails)


async def test_scheduled_campaign_first_ses_call_within_1s_of_send_at(
    client, admin, engine, redis, clean_standin, start_worker
):
    """The start job deferred to ``send_at`` starts the campaign: its first SES call comes
    at ``send_at``, not before and at most 1 s after (measured on the stand-in's clock).

    The reconciler runs once at the worker's start and then only a minute later, so it
    cannot be what starts the campaign on time; the worker is up and polling before
    ``send_at`` is chosen, so the margin is the scheduling's alone.
    """
    control = clean_standin.control
    emails = await seed_contacts(engine, 20)
    start_worker(MAILER_RECONCILE_INTERVAL_SECONDS="60")
    deadline = time.monotonic() + 30
    while not await redis.exists("arq:send:health-check"):  # the worker polls its queue
        assert time.monotonic() < deadline, "worker did not start"
        await asyncio.sleep(0.1)
    await asyncio.sleep(1.0)  # its reconciler's first round (at start-up) is over

    send_at = datetime.now(UTC) + timedelta(seconds=2)
    campaign = await factories.campaign(client, admin, send_at=send_at.isoformat())
    r = await _action(client, admin, campaign["id"], "send")
    assert r.status_code == 202 and r.json()["status"] == "scheduled", r.text

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 30)
    assert done["stats"]["sent"] == 20
    first_call = min(m["time"] for m in control.messages())
    late = first_call - send_at.timestamp()
    assert 0 <= late <= 1.0, late
    assert set(recipients(control)) == set(emails)


async def test_resumed_before_send_at_still_starts_at_send_at(
    client, admin, engine, redis, clean_standin, start_worker
):
    """Paused while scheduled, its deferred start lost (Redis flushed), resumed before
    ``send_at``: the resume re-arms the start, and the campaign starts at ``send_at``
    without waiting for a reconcile round (a minute away)."""
    control = clean_standin.control
    await seed_contacts(engine, 10)
    start_worker(MAILER_RECONCILE_INTERVAL_SECONDS="60")
    send_at = datetime.now(UTC) + timedelta(seconds=4)
    campaign = await factories.campaign(client, admin, send_at=send_at.isoformat())
    cid = campaign["id"]
    assert (await _action(client, admin, cid, "send")).status_code == 202
    assert (await _action(client, admin, cid, "pause")).status_code == 200
    await redis.flushdb()
    resumed = await _action(client, admin, cid, "resume")
    assert resumed.status_code == 200 and resumed.json()["status"] == "scheduled"

    done = await factories.wait_for_status(client, admin, cid, {"completed"}, 30)
    assert done["stats"]["sent"] == 10
    first_call = min(m["time"] for m in control.messages())
    assert send_at.timestamp() <= first_call <= send_at.timestamp() + 10
