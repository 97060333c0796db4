"""Poison messages: a template that fails, or asks for more than its budget, fails its own
message once, with the reason; nothing else its worker holds suffers (real worker, real
PostgreSQL and Redis, the SES stand-in)."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import psutil
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from mailer.config import Settings
from mailer.sending import repository as repo
from tests.campaign.conftest import recipients
from tests.message.test_send import INLINE, wait_final

# A message is rendered once when it is accepted (a template that cannot render is a 422
# then), so these go off only at send time: their size comes from the recipient's contact,
# small when the message is accepted and set large before a worker renders it.
# 750 MB in one step before the budgets came first (the subject's output counts too)
MEMORY_BOMB = "{{ ([('a'*contact.attributes.n)]*3000)|join }}"
MEMORY_N = 250_000
# half a second of CPU in the render (its time limit), one turn of a loop at a time
TIME_BOMB = (
    "{% for i in range(contact.attributes.n) %}{{ range(10000)|list|sort|first }}{% endfor %}"
)
TIME_N = 10_000


async def _arm(client: httpx.AsyncClient, admin: dict[str, str], armed: dict[str, int]) -> None:
    """Contacts for bombs: n = 1 while their messages are accepted (``set_n`` later)."""
    for email in armed:
        r = await client.put(f"/v1/contacts/{email}", headers=admin, json={"attributes": {"n": 1}})
        assert r.status_code in (200, 201), r.text


async def _set_n(client: httpx.AsyncClient, admin: dict[str, str], armed: dict[str, int]) -> None:
    for email, n in armed.items():
        r = await client.patch(
            f"/v1/contacts/{email}", headers=admin, json={"attributes": {"n": n}}
        )
        assert r.status_code == 200, r.text


@pytest.fixture
async def tx(make_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {await make_key('transactional')}"}


def _peaks(pid: int) -> dict[int, int]:
    """Peak resident memory (VmHWM, bytes) of a worker and its child processes."""
    peaks = {}
    for process in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]:
        with open(f"/proc/{process.pid}/status") as f:
            kb = re.search(r"VmHWM:\s+(\d+)", f.read())
        peaks[process.pid] = int(kb.group(1)) * 1024 if kb else 0
    return peaks


async def _message(engine: AsyncEngine, message_id: int) -> dict:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, attempts, error, maybe_sent FROM messages WHERE id = :id"),
                {"id": message_id},
            )
        ).one()
    return dict(row._mapping)


async def test_a_bomb_fails_once_with_the_reason_and_the_next_message_is_sent(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    admin: dict[str, str],
    engine: AsyncEngine,
    clean_standin,
    start_worker,
) -> None:
    # what a worker's processes reach with ordinary mail: the yardstick of the bombs' worker
    first = start_worker()
    warm = await client.post("/v1/messages", headers=tx, json={**INLINE, "to": "w@example.test"})
    assert (await wait_final(client, tx, warm.json()["id"], 180))["status"] == "sent"
    ordinary = max(_peaks(first.process.pid).values())
    first.stop()

    armed = {"bm@example.test": MEMORY_N, "bt@example.test": TIME_N}
    await _arm(client, admin, armed)
    bombs = []
    for (email, _), bomb in zip(armed.items(), (MEMORY_BOMB, TIME_BOMB), strict=True):
        r = await client.post(
            "/v1/messages", headers=tx, json={**INLINE, "to": email, "html": bomb}
        )
        assert r.status_code == 202, r.text
        bombs.append(r.json()["id"])
    later = await client.post("/v1/messages", headers=tx, json={**INLINE, "to": "b@example.test"})
    await _set_n(client, admin, armed)
    worker = start_worker()
    # the positive event: a message queued after the bombs went out
    assert (await wait_final(client, tx, later.json()["id"], 180))["status"] == "sent", worker.log()
    for bomb, reason in zip(bombs, ("output limit", "time limit"), strict=True):
        done = await wait_final(client, tx, bomb)
        assert done["status"] == "failed" and reason in done["error"], done
        row = await _message(engine, bomb)
        # failed at its first claim, before any SES call: no attempt of a call was made,
        # and a failed message is never claimed again
        assert row["attempts"] == 0 and not row["maybe_sent"], row
    assert set(recipients(clean_standin.control)) == {"w@example.test", "b@example.test"}
    assert worker.process.poll() is None, worker.log()
    # the worker's processes (the transactional lane runs in a child) did not balloon
    grown = max(_peaks(worker.process.pid).values()) - ordinary
    assert grown < 50 * 1024 * 1024, grown


async def test_a_message_whose_holders_keep_dying_fails_after_bounded_attempts(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    engine: AsyncEngine,
    settings: Settings,
    clean_standin,
    start_worker,
) -> None:
    """Workers that die while holding a message (killed mid-render: out of memory, a
    deploy) leave it claimed; each lapse of such a lease uses up an attempt, and once
    they are used up the next worker fails it instead of claiming it again."""
    poison = (await client.post("/v1/messages", headers=tx, json=INLINE)).json()["id"]
    for lapse in range(1, settings.transient_max_attempts + 1):
        async with engine.connect() as conn:  # a worker claims it, then dies holding it
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            claimed = await repo.claim_messages(conn, [poison], f"dead-{lapse}", 0.05)
        assert [m.id for m in claimed] == [poison]
        deadline = time.monotonic() + 10
        while True:  # the reconciler's step: the lapsed lease goes back to the queue
            async with AsyncSession(engine) as session, session.begin():
                released = await repo.release_expired(session)
            if released:
                break
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert (await _message(engine, poison))["attempts"] == lapse

    worker = start_worker()
    later = await client.post("/v1/messages", headers=tx, json={**INLINE, "to": "b@example.test"})
    assert (await wait_final(client, tx, later.json()["id"], 180))["status"] == "sent", worker.log()
    done = await wait_final(client, tx, poison)
    assert done["status"] == "failed", done
    assert f"gave up after {settings.transient_max_attempts} attempts" in done["error"]
    assert set(recipients(clean_standin.control)) == {"b@example.test"}


async def test_a_worker_rendering_bombs_keeps_its_other_leases(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    admin: dict[str, str],
    engine: AsyncEngine,
    clean_standin,
    start_worker,
) -> None:
    """Bombs render beside ordinary mail whose SES calls are in flight: the worker's event
    loop keeps renewing its leases and recording answers, so no lease lapses, nothing is
    sent twice or counted as maybe sent. (Rendered on the loop, eight half-second renders
    held it for four seconds: leases of two seconds lapsed and their mail was re-sent.)"""
    control = clean_standin.control
    control.set_latency(300)
    items, armed = [], {}
    for i in range(48):
        html = (TIME_BOMB if i % 6 == 0 else MEMORY_BOMB) if i % 3 == 0 else INLINE["html"]
        items.append({**INLINE, "to": f"t{i}@example.test", "html": html})
        if i % 3 == 0:
            armed[f"t{i}@example.test"] = TIME_N if i % 6 == 0 else MEMORY_N
    await _arm(client, admin, armed)
    r = await client.post("/v1/messages/batch", headers=tx, json={"messages": items})
    ids = [item["id"] for item in r.json()["items"]]
    assert all(ids), r.text
    await _set_n(client, admin, armed)
    worker = start_worker(MAILER_LEASE_SECONDS="2", MAILER_RECONCILE_INTERVAL_SECONDS="0.5")
    finals = [await wait_final(client, tx, i, timeout=180) for i in ids]
    for i, done in enumerate(finals):
        assert done["status"] == ("failed" if i % 3 == 0 else "sent"), (i, done, worker.log())
    seen = recipients(control)
    assert len(seen) == 32 and max(seen.values()) == 1, seen
    async with engine.connect() as conn:
        resent = (
            await conn.execute(text("SELECT count(*) FROM messages WHERE maybe_sent"))
        ).scalar()
        attempts = (
            await conn.execute(text("SELECT max(attempts) FROM messages WHERE status = 'sent'"))
        ).scalar()
    assert resent == 0 and attempts == 1
    assert worker.process.poll() is None, worker.log()
