"""SES misbehaving: throttling, 5xx, timeouts, rejections, a failing region, template errors."""

from __future__ import annotations

import asyncio
import time

import pytest

from mailer.local.standin_client import fault
from tests import factories
from tests.campaign.conftest import launch, recipients, seed_contacts, wait_sent
from tests.campaign.invariants import assert_counters_add_up


async def test_fault_mix_loses_nothing_and_throttling_never_fails_a_message(
    client, admin, engine, clean_standin, start_worker
):
    """30 throttles, 5 server errors and 3 timeouts on the first calls: all mail goes out.

    Transient faults total 8, under the breaker threshold (10 in a row) and the attempt
    bound (6), so the expected outcome is exact: everything sent, once, nothing failed.
    """
    control = clean_standin.control
    n = 300
    emails = await seed_contacts(engine, n)
    control.set_faults(
        [
            fault("throttle", count=30),
            fault("error500", count=5),
            fault("timeout", count=3, hold_s=3),
        ]
    )
    start_worker(
        MAILER_REGIONS="us-east-1=200", MAILER_SES_TIMEOUT_SECONDS="1", MAILER_SEND_BATCH_SIZE="100"
    )
    campaign = await launch(client, admin)

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 30)
    stats = control.stats()
    assert stats["totals"]["faults"] == {"throttle": 30, "error500": 5, "timeout": 3}
    seen = recipients(control)
    assert set(seen) == set(emails)
    assert max(seen.values()) == 1  # a timed-out call never reached the stand-in's records
    assert done["stats"]["sent"] == n and done["stats"]["failed"] == 0
    messages = await factories.all_messages(client, admin, campaign["id"])
    assert {m["status"] for m in messages} == {"sent"}
    # throttling does not use up attempts: only real calls and transient faults count
    assert sum(m["attempts"] for m in messages) == n + 5 + 3


async def test_throttled_forever_is_retried_not_failed(
    client, admin, engine, clean_standin, start_worker
):
    """Only 429s for a while: more throttles than messages × the transient attempt bound
    (6), so some message was throttled more often than a transient error may repeat —
    and still nothing fails; once SES lets mail through, all of it goes, each once."""
    control = clean_standin.control
    n = 10
    emails = await seed_contacts(engine, n)
    control.set_faults([fault("throttle")])
    start_worker(MAILER_REGIONS="us-east-1=100")
    campaign = await launch(client, admin)

    deadline = time.monotonic() + 25
    while control.stats()["totals"]["faults"].get("throttle", 0) < 7 * n:
        assert time.monotonic() < deadline, control.stats()
        await asyncio.sleep(0.1)
    body = (await client.get(f"/v1/campaigns/{campaign['id']}", headers=admin)).json()
    assert body["status"] == "sending" and body["stats"]["failed"] == 0
    control.clear_faults()

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 30)
    assert done["stats"]["sent"] == n and done["stats"]["failed"] == 0
    seen = recipients(control)
    assert set(seen) == set(emails) and max(seen.values()) == 1
    messages = await factories.all_messages(client, admin, campaign["id"])
    assert {m["attempts"] for m in messages} == {1}  # throttles used up no attempt


@pytest.mark.regions("us-east-1=150", "eu-west-1=150")
async def test_failing_region_traffic_moves_to_the_healthy_one(
    client, admin, engine, clean_standin, start_worker
):
    """eu-west-1 answers 500 to everything: the breaker takes it out, us-east-1 sends all."""
    control = clean_standin.control
    n = 450
    emails = await seed_contacts(engine, n)
    control.set_faults([fault("region_down", region="eu-west-1")])
    start_worker(MAILER_REGIONS="us-east-1=150,eu-west-1=150", MAILER_SEND_BATCH_SIZE="100")
    campaign = await launch(client, admin, regions=["us-east-1", "eu-west-1"])
    assert campaign["regions"] == ["us-east-1", "eu-west-1"]

    def eu() -> int:
        return control.stats()["regions"].get("eu-west-1", {}).get("calls", 0)

    deadline = time.monotonic() + 60  # the worker starts (seconds on a loaded machine)
    while eu() == 0:
        assert time.monotonic() < deadline, control.stats()
        await asyncio.sleep(0.1)
    # the breaker opens after 10 failures in a row; from then on eu-west-1 sees no call
    deadline = time.monotonic() + 10
    eu_calls = []
    while time.monotonic() < deadline:
        calls = eu()
        eu_calls.append(calls)
        if len(eu_calls) > 10 and eu_calls[-10] == calls:
            break
        await asyncio.sleep(0.1)
    stalled_at = eu_calls[-1]
    assert stalled_at > 0

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 30)
    stats = control.stats()
    assert stats["regions"]["eu-west-1"]["calls"] == stalled_at
    assert stats["regions"]["eu-west-1"]["sent"] == 0
    assert stats["regions"]["us-east-1"]["sent"] == n
    assert set(recipients(control)) == set(emails)
    assert done["stats"]["sent"] == n and done["stats"]["failed"] == 0
    messages = await factories.all_messages(client, admin, campaign["id"])
    assert {m["region"] for m in messages} == {"us-east-1"}
    assert {m["status"] for m in messages} == {"sent"}


async def test_rejections_and_template_errors_fail_only_their_messages(
    client, admin, engine, clean_standin, start_worker
):
    """MessageRejected → failed with the reason; a contact missing an attribute the
    template needs (strict undefined) fails only that message."""
    control = clean_standin.control
    n = 40
    emails = await seed_contacts(
        engine, n, attributes=lambda i: {} if i == 7 else {"code": f"c{i}"}
    )
    template = await factories.template(
        client, admin, subject="Your code {{ contact.attributes.code.upper() }}"
    )
    control.set_faults([fault("reject", count=3, message="Illegal address")])
    start_worker()
    campaign = await launch(client, admin, template_id=template["id"])

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 30)
    assert done["stats"]["failed"] == 4 and done["stats"]["sent"] == n - 4
    await assert_counters_add_up(engine, done["stats"], campaign["id"])
    messages = await factories.all_messages(client, admin, campaign["id"])
    failed = {m["email"]: m for m in messages if m["status"] == "failed"}
    assert len(failed) == 4
    broken = failed.pop("user7@example.test")
    assert "code" in broken["error"] and broken["ses_message_id"] is None
    assert all(
        "MessageRejected" in m["error"] and "Illegal address" in m["error"] for m in failed.values()
    )
    seen = recipients(control)
    assert set(seen) == set(emails) - set(failed) - {"user7@example.test"}
    assert all(
        m["Content"]["Simple"]["Subject"]["Data"].startswith("Your code C")
        for m in control.messages()
    )


@pytest.mark.regions("us-east-1=150", "eu-west-1=150")
async def test_broken_region_is_probed_cheaply_and_comes_back_when_it_heals(
    client, admin, engine, clean_standin, start_worker
):
    """Breaker open for 1 s at a time: each re-probe of a region that still fails costs a
    few calls, not another full threshold of failed messages; once it heals it gets
    traffic again. Nothing fails either way."""
    control = clean_standin.control
    n = 900
    emails = await seed_contacts(engine, n)
    control.set_faults([fault("region_down", region="eu-west-1")])
    start_worker(
        MAILER_REGIONS="us-east-1=150,eu-west-1=150",
        MAILER_SEND_BATCH_SIZE="100",
        MAILER_REGION_OPEN_SECONDS="1",
    )
    campaign = await launch(client, admin, regions=["us-east-1", "eu-west-1"])

    def eu() -> dict:
        return control.stats()["regions"].get("eu-west-1", {"calls": 0, "sent": 0})

    deadline = time.monotonic() + 60  # the worker starts (seconds on a loaded machine)
    while eu()["calls"] < 10:  # the threshold: the breaker opens for the first time
        assert time.monotonic() < deadline, control.stats()
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # calls already under way at the opening land
    opened, started = eu()["calls"], time.monotonic()
    await asyncio.sleep(3)
    later, elapsed = eu(), time.monotonic() - started
    assert later["sent"] == 0
    # re-opened about once a second (1 s open + up to 0.5 s until a worker looks again);
    # each time one probe, plus the odd call already past the check, fails: not another
    # full threshold of 10 failed messages
    assert later["calls"] - opened <= 3 * (elapsed + 1), (opened, later)
    control.clear_faults()

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 30)
    stats = control.stats()["regions"]
    assert stats["eu-west-1"]["sent"] > 0  # the region came back
    assert stats["eu-west-1"]["sent"] + stats["us-east-1"]["sent"] == n
    assert set(recipients(control)) == set(emails)
    assert done["stats"]["sent"] == n and done["stats"]["failed"] == 0


@pytest.mark.regions("us-east-1=150", "eu-west-1=150")
async def test_daily_quota_parks_the_region_and_mail_goes_through_the_other(
    client, admin, engine, clean_standin, start_worker
):
    """eu-west-1 runs out of its daily quota: it is parked, nothing fails, us-east-1 sends
    the rest."""
    control = clean_standin.control
    n = 200
    emails = await seed_contacts(engine, n)
    control.set_rates({"us-east-1": 1000, "eu-west-1": 1000}, max_24h={"eu-west-1": 20})
    start_worker(MAILER_REGIONS="us-east-1=150,eu-west-1=150", MAILER_SEND_BATCH_SIZE="100")
    campaign = await launch(client, admin, regions=["us-east-1", "eu-west-1"])

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 30)
    stats = control.stats()["regions"]
    assert stats["eu-west-1"]["sent"] == 20
    assert stats["us-east-1"]["sent"] == n - 20
    assert done["stats"]["sent"] == n and done["stats"]["failed"] == 0
    assert set(recipients(control)) == set(emails)
    # parked after the first refusal(s): not called again and again
    assert stats["eu-west-1"]["quota_exceeded"] <= 5, stats["eu-west-1"]


async def test_sending_paused_by_ses_pauses_the_mail_class_with_the_reason(
    client, admin, engine, clean_standin, start_worker
):
    """SES says sending is paused (account or configuration set): the campaigns of that
    mail class are paused with the reason; nothing is failed and resume finishes them."""
    control = clean_standin.control
    n = 150
    await seed_contacts(engine, n)
    control.set_faults([fault("paused")])  # every call until cleared
    start_worker(MAILER_REGIONS="us-east-1=150", MAILER_SEND_BATCH_SIZE="50")
    campaign = await launch(client, admin)

    paused = await factories.wait_for_status(client, admin, campaign["id"], {"paused"}, 20)
    assert "SendingPausedException" in (paused["paused_reason"] or "")
    assert paused["stats"]["failed"] == 0 and paused["stats"]["sent"] == 0

    # let the calls that were under way at the pause come back (each answered "paused")
    # before SES is healthy again and the campaign is resumed
    calls = -1
    while calls != control.stats()["totals"]["calls"]:
        calls = control.stats()["totals"]["calls"]
        await asyncio.sleep(1.5)
    control.clear_faults()
    r = await client.post(f"/v1/campaigns/{campaign['id']}/resume", headers=admin)
    assert r.status_code == 200, r.text
    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 30)
    assert done["stats"]["sent"] == n and done["stats"]["failed"] == 0
    assert max(recipients(control).values()) == 1


async def test_credentials_refused_for_8_seconds_pause_the_class_and_fail_nothing(
    client, admin, engine, clean_standin, start_worker
):
    """SES answers 403 UnrecognizedClientException for 8 s mid-campaign: the campaign is
    paused with the reason, no message fails; after the resume everyone gets the mail,
    once."""
    control = clean_standin.control
    control.set_latency(10)
    n = 900
    emails = await seed_contacts(engine, n)
    start_worker(MAILER_REGIONS="us-east-1=150", MAILER_SEND_BATCH_SIZE="100")
    campaign = await launch(client, admin)

    await wait_sent(control, 150)
    control.set_faults([fault("credentials", for_s=8)])
    window_ends = time.monotonic() + 8
    paused = await factories.wait_for_status(client, admin, campaign["id"], {"paused"}, 20)
    assert "UnrecognizedClientException" in (paused["paused_reason"] or "")
    assert paused["stats"]["failed"] == 0
    assert control.stats()["totals"]["faults"]["credentials"] > 0

    # the operator fixes the credentials (the window ends), then resumes
    await asyncio.sleep(max(window_ends - time.monotonic(), 0) + 0.5)
    refused = control.stats()["totals"]["faults"]["credentials"]
    body = (await client.get(f"/v1/campaigns/{campaign['id']}", headers=admin)).json()
    assert body["status"] == "paused" and body["stats"]["failed"] == 0
    assert body["stats"]["sent"] < n
    r = await client.post(f"/v1/campaigns/{campaign['id']}/resume", headers=admin)
    assert r.status_code == 200, r.text

    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 60)
    assert done["stats"]["sent"] == n and done["stats"]["failed"] == 0
    assert done["stats"]["resent"] == 0
    seen = recipients(control)
    assert set(seen) == set(emails) and max(seen.values()) == 1
    assert control.stats()["totals"]["faults"]["credentials"] == refused
    messages = await factories.all_messages(client, admin, campaign["id"])
    assert {m["status"] for m in messages} == {"sent"}
    # a refused call gave its attempt back
    assert {m["attempts"] for m in messages} == {1}


async def test_unverified_sender_pauses_instead_of_failing_the_audience(
    client, admin, engine, clean_standin, start_worker
):
    """MessageRejected "Email address is not verified" naming the sender is the account's
    problem, not the recipients': pause, fail nothing."""
    control = clean_standin.control
    n = 100
    await seed_contacts(engine, n)
    control.set_faults([fault("unverified_sender")])
    start_worker(MAILER_REGIONS="us-east-1=150", MAILER_SEND_BATCH_SIZE="50")
    campaign = await launch(client, admin)

    paused = await factories.wait_for_status(client, admin, campaign["id"], {"paused"}, 20)
    assert "not verified" in (paused["paused_reason"] or "")
    assert campaign["from_address"] in paused["paused_reason"]
    assert paused["stats"]["failed"] == 0 and paused["stats"]["sent"] == 0


async def test_error_rate_stop_pauses_a_campaign_whose_sends_keep_failing(
    client, admin, engine, clean_standin, start_worker
):
    """Every call rejected: the campaign stops itself after 10 failures of its last 20
    sends, with the reason, instead of failing its whole audience; resumed once SES
    accepts mail again, it sends the rest."""
    control = clean_standin.control
    n = 400
    emails = await seed_contacts(engine, n)
    control.set_faults([fault("reject", message="Illegal address")])
    start_worker(
        MAILER_REGIONS="us-east-1=100",
        MAILER_SEND_BATCH_SIZE="100",
        MAILER_ERROR_STOP_WINDOW="20",
        MAILER_ERROR_STOP_FAILURES="10",
    )
    campaign = await launch(client, admin)

    paused = await factories.wait_for_status(client, admin, campaign["id"], {"paused"}, 20)
    assert "error-rate stop" in (paused["paused_reason"] or "")
    assert "Illegal address" in paused["paused_reason"]
    # the calls in flight at the stop come back; then nothing more is tried
    calls = -1
    while calls != control.stats()["totals"]["calls"]:
        calls = control.stats()["totals"]["calls"]
        await asyncio.sleep(1.5)
    body = (await client.get(f"/v1/campaigns/{campaign['id']}", headers=admin)).json()
    failed = body["stats"]["failed"]
    assert 10 <= failed < n // 2, body["stats"]
    assert body["stats"]["sent"] == 0

    control.clear_faults()
    r = await client.post(f"/v1/campaigns/{campaign['id']}/resume", headers=admin)
    assert r.status_code == 200, r.text
    done = await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 30)
    assert done["stats"]["failed"] == failed and done["stats"]["sent"] == n - failed
    assert len(recipients(control)) == n - failed
    assert set(recipients(control)) < set(emails)
