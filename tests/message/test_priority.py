"""The transactional lane has priority: a campaign holding a region at its limit does not
hold back transactional mail (real worker processes, a rate-limited stand-in)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.campaign.conftest import launch, seed_contacts, wait_sent

# the stand-in's (and so the workers') MaxSendRate for us-east-1: low, so that the time a
# loaded machine takes to bring a message to the limiter lets few campaign sends pass
RATE = 5


@pytest.fixture
async def tx(make_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {await make_key('transactional')}"}


def _urgent(name: str) -> dict[str, str]:
    return {
        "to": f"urgent{name}@example.test",
        "from_address": "hello@mailer.test",
        "subject": "Reset",
        "html": "<p>Reset</p>",
    }


def _message_id(call: dict) -> int:
    return int({t["Name"]: t["Value"] for t in call["EmailTags"]}["message_id"])


async def test_transactional_mail_overtakes_the_campaign_mail_queued_before_it(
    client: httpx.AsyncClient,
    admin: dict[str, str],
    tx: dict[str, str],
    engine: AsyncEngine,
    clean_standin,
    start_worker,
) -> None:
    control = clean_standin.control
    control.set_rates({"us-east-1": RATE})
    n = 150
    await seed_contacts(engine, n)
    # two worker processes, each holding some of the campaign's batches: the rate holds
    # across both, the priority too
    env = {"MAILER_SEND_CONCURRENCY": "48", "MAILER_SEND_BATCH_SIZE": "40"}
    start_worker(**env)
    start_worker(**env)
    campaign = await launch(client, admin)
    await wait_sent(control, 2 * RATE, within=60)  # the campaign holds the region
    # the transactional lane is up (its process of its own starts after the campaign's
    # senders on a loaded machine): a first message has reached SES
    first = await client.post("/v1/messages", headers=tx, json=_urgent("first"))
    assert first.status_code == 202
    for _ in range(600):
        if first.json()["id"] in {_message_id(c) for c in control.messages()}:
            break
        await asyncio.sleep(0.1)

    waiting_at_accept: dict[int, set[int]] = {}
    for i in range(3):
        async with engine.connect() as conn:
            # campaign messages marked for their SES call, waiting for a rate slot
            rows = await conn.execute(
                text("SELECT id FROM messages WHERE campaign_id = :c AND status = 'sending'"),
                {"c": campaign["id"]},
            )
            waiting = {r.id for r in rows}
        r = await client.post("/v1/messages", headers=tx, json=_urgent(str(i)))
        assert r.status_code == 202
        waiting_at_accept[r.json()["id"]] = waiting
        await asyncio.sleep(1.0)

    # wait until every transactional message reached SES
    for _ in range(600):
        seen = {_message_id(c) for c in control.messages()}
        if set(waiting_at_accept) <= seen:
            break
        await asyncio.sleep(0.1)
    calls = control.messages()
    order = {_message_id(c): c["seq"] for c in calls}
    assert set(waiting_at_accept) <= set(order), "a transactional message never reached SES"
    lane = {*waiting_at_accept, first.json()["id"]}
    remaining = n - sum(1 for c in calls if _message_id(c) not in lane)
    assert remaining > 0, "the campaign finished before the transactional mail went"
    for message_id, waiting in waiting_at_accept.items():
        before_it = {m for m in waiting if m in order and order[m] < order[message_id]}
        # a campaign message already holding a slot (or its call) may still go first; the
        # many waiting for one go after. FIFO would put the message behind all of them.
        assert len(waiting) >= 30, f"the campaign was not holding the region: {len(waiting)}"
        assert len(before_it) <= len(waiting) // 2, (message_id, len(before_it), len(waiting))
