"""Crash safety with real worker processes: SIGKILL mid-campaign, Redis flushed mid-campaign."""

from __future__ import annotations

import asyncio
import signal
import time

from sqlalchemy import text

from tests import factories
from tests.campaign.conftest import launch, recipients, seed_contacts, wait_sent
from tests.campaign.invariants import assert_counters_add_up

RATE = "us-east-1=150"


async def _count(engine, sql: str, **params) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql), params)).scalar_one())


async def test_sigkilled_worker_work_is_taken_up_and_resends_are_counted(
    client, admin, engine, clean_standin, start_worker
):
    """A worker killed with SIGKILL mid-campaign: another one finishes it.

    Every recipient gets the mail. A recipient can get it twice only if its SES call was
    under way (accepted but not yet recorded) at the kill: such messages are still
    ``sending`` in PostgreSQL right after the kill, so duplicates ≤ that number. When the
    lease lapses they are marked ``maybe_sent``, and sending them again counts in
    ``stats.resent`` — conservatively: a call that never reached SES counts too, so
    ``resent`` ≥ the duplicates the stand-in actually saw.
    """
    control = clean_standin.control
    control.set_latency(30)  # keeps several SES calls in flight at any instant
    n = 600
    emails = await seed_contacts(engine, n)
    first = start_worker(MAILER_REGIONS=RATE, MAILER_SEND_BATCH_SIZE="100")
    campaign = await launch(client, admin)

    await wait_sent(control, 150)
    first.kill()
    killed_at = time.monotonic()
    sent_at_kill = control.sent()
    # a commit already on its way when the process died lands within moments; leases
    # (5 s, renewed every 1.7 s) cannot lapse this early
    await asyncio.sleep(0.3)
    in_flight = await _count(
        engine,
        "SELECT count(*) FROM messages WHERE campaign_id = :id AND status = 'sending'",
        id=campaign["id"],
    )
    assert 0 < sent_at_kill < n

    second = start_worker(MAILER_REGIONS=RATE, MAILER_SEND_BATCH_SIZE="100")
    await wait_sent(control, sent_at_kill + 1, within=60)
    resumed_after = time.monotonic() - killed_at
    assert resumed_after < 60

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 60)
    seen = recipients(control)
    assert set(seen) == set(emails), second.log()
    duplicates = sum(c - 1 for c in seen.values())
    assert duplicates <= in_flight
    stats = done["stats"]
    # every message that was `sending` at the kill is counted, and only those
    assert duplicates <= stats["resent"] == in_flight
    assert stats["recipients"] == n and stats["sent"] == n
    assert stats["failed"] == 0 and stats["queued"] == 0
    await assert_counters_add_up(engine, stats, campaign["id"])
    messages = await factories.all_messages(client, admin, campaign["id"])
    assert {m["status"] for m in messages} == {"sent"}
    assert "send_failed_unexpectedly" not in second.log()
    # each message's SES id is one of the ids the stand-in gave out for that recipient
    ids = {m["MessageId"] for m in control.messages()}
    assert all(m["ses_message_id"] in ids for m in messages)


async def test_redis_flushed_mid_campaign_loses_nothing_and_sends_nothing_twice(
    client, admin, engine, redis, clean_standin, start_worker
):
    """FLUSHDB drops jobs, owners, heartbeats, buckets: PostgreSQL rebuilds the work."""
    control = clean_standin.control
    n = 500
    emails = await seed_contacts(engine, n)
    worker = start_worker(MAILER_REGIONS=RATE, MAILER_SEND_BATCH_SIZE="100")
    campaign = await launch(client, admin)

    await wait_sent(control, 120)
    await redis.flushdb()
    flushed_at = control.sent()
    assert flushed_at < n

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 60)
    seen = recipients(control)
    assert set(seen) == set(emails), worker.log()
    assert max(seen.values()) == 1, [e for e, c in seen.items() if c > 1]
    assert done["stats"]["sent"] == n and done["stats"]["resent"] == 0
    assert done["stats"]["queued"] == 0 and done["stats"]["failed"] == 0
    assert "send_failed_unexpectedly" not in worker.log()


async def test_survivor_takes_over_a_killed_workers_share_within_the_shared_rate(
    client, admin, engine, clean_standin, start_worker
):
    """Two workers share the campaign and one region's rate; one is SIGKILLed: the other,
    already running, finishes the dead one's share; the stand-in, limited to the same
    rate, never had to throttle (the limit holds across processes)."""
    control = clean_standin.control
    # SES tolerates short bursts over MaxSendRate ("plus at most one second's
    # burst"). The stand-in shares 2 cores with both workers and PostgreSQL: when it is
    # starved (the workers render their first messages) it reads requests late and in a
    # bunch, which its strict window would count as an overrun. 10 % burst absorbs that.
    control.set_rates({"us-east-1": 150}, burst=15)
    control.set_latency(20)
    n = 600
    emails = await seed_contacts(engine, n)
    env = {"MAILER_REGIONS": RATE, "MAILER_SEND_BATCH_SIZE": "50"}
    doomed = start_worker(**env)
    survivor = start_worker(**env)
    campaign = await launch(client, admin)

    await wait_sent(control, 200)
    doomed.kill()
    await asyncio.sleep(0.3)
    in_flight = await _count(
        engine,
        "SELECT count(*) FROM messages WHERE campaign_id = :id AND status = 'sending'",
        id=campaign["id"],
    )
    held = await _count(
        engine,
        "SELECT count(*) FROM messages WHERE campaign_id = :id"
        " AND status IN ('claimed', 'sending')",
        id=campaign["id"],
    )
    assert held > 0  # the dead worker held work that only the lease gives back

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 60)
    seen = recipients(control)
    assert set(seen) == set(emails), survivor.log()
    duplicates = sum(c - 1 for c in seen.values())
    assert duplicates <= done["stats"]["resent"] <= in_flight
    assert done["stats"]["sent"] == n and done["stats"]["failed"] == 0
    stats = control.stats()["regions"]["us-east-1"]
    assert stats["throttled"] == 0 and stats["max_window"] <= 165, stats
    assert "send_failed_unexpectedly" not in survivor.log()


async def test_sigterm_mid_campaign_records_calls_in_flight_and_hands_over_held_work(
    client, admin, engine, clean_standin, start_worker
):
    """A graceful stop (SIGTERM, as in a deploy) with SES answering in 150 ms: the worker
    lets its calls in flight finish and records them, gives back everything else it
    holds, and exits by itself; the next worker sends the rest. Nobody gets the mail
    twice, nothing is counted as a re-send."""
    control = clean_standin.control
    control.set_latency(150)  # many calls in flight at the signal
    n = 900
    emails = await seed_contacts(engine, n)
    env = {"MAILER_REGIONS": "us-east-1=300", "MAILER_SEND_BATCH_SIZE": "100"}
    stopped = start_worker(**env)
    campaign = await launch(client, admin)

    await wait_sent(control, 200)
    in_flight = await _count(
        engine,
        "SELECT count(*) FROM messages WHERE campaign_id = :id AND status = 'sending'",
        id=campaign["id"],
    )
    stopped.process.send_signal(signal.SIGTERM)
    code = await asyncio.to_thread(stopped.process.wait, 60)
    assert code == 0, stopped.log()
    assert "graceful_stop_timed_out" not in stopped.log()
    assert "send_failed_unexpectedly" not in stopped.log()

    # every call SES accepted is recorded; nothing is left claimed or in flight
    held = await _count(
        engine,
        "SELECT count(*) FROM messages WHERE campaign_id = :id"
        " AND status IN ('claimed', 'sending')",
        id=campaign["id"],
    )
    assert held == 0
    body = (await client.get(f"/v1/campaigns/{campaign['id']}", headers=admin)).json()
    accepted = control.sent()
    assert in_flight > 0 and accepted < n
    assert body["stats"]["sent"] == accepted and body["status"] == "sending"
    assert body["stats"]["queued"] == n - accepted

    successor = start_worker(**env)
    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 60)
    seen = recipients(control)
    assert set(seen) == set(emails), successor.log()
    assert max(seen.values()) == 1, [e for e, c in seen.items() if c > 1]
    assert done["stats"]["sent"] == n and done["stats"]["resent"] == 0
    assert done["stats"]["failed"] == 0 and done["stats"]["queued"] == 0
    messages = await factories.all_messages(client, admin, campaign["id"])
    assert {m["status"] for m in messages} == {"sent"}
    assert {m["attempts"] for m in messages} == {1}
