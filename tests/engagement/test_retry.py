"""POST /v1/campaigns/{id}/retry: the retryable failed recipients get their message once
more, and nobody else, however many calls come at once."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import text

from tests import factories
from tests.campaign.invariants import assert_counters_add_up
from tests.fixtures.workers import wait_queues_idle

# the failures of recipients 0..6, and whether a retry may send again
FAILURES = [
    ("gave up after 6 attempts: 503: Service Unavailable", True),
    ("gave up after 6 attempts: timeout: Read timeout on endpoint URL", True),
    ("MessageRejected: Message content rejected", False),  # content
    ("InvalidParameterValue: Missing final '@domain'", False),  # invalid address
    ("gave up after 6 attempts: 503: Service Unavailable", False),  # suppressed since
    ("html: template error: 'dict object' has no attribute 'code'", False),  # render
    ("gave up after 6 attempts: connection: reset", False),  # retried before
]


async def _fail(engine, campaign_id: int, emails: list[str]) -> None:
    """Turn recipients 0..6 into failed messages (never accepted by SES), with the
    counters as the send path leaves them."""
    async with engine.begin() as conn:
        for email, (reason, _) in zip(emails, FAILURES, strict=False):
            await conn.execute(
                text(
                    "UPDATE messages SET status = 'failed', error = :e, sent_at = NULL,"
                    " ses_message_id = NULL WHERE campaign_id = :c AND email = :m"
                ),
                {"e": reason, "c": campaign_id, "m": email},
            )
        await conn.execute(
            text("UPDATE campaign_stats SET sent = sent - :n, failed = failed + :n"
                 " WHERE campaign_id = :c"),
            {"n": len(FAILURES), "c": campaign_id},
        )  # fmt: skip
        await conn.execute(
            text("UPDATE messages SET retried_at = now() WHERE campaign_id = :c AND email = :m"),
            {"c": campaign_id, "m": emails[6]},
        )
        await conn.execute(
            text("INSERT INTO suppressions (email, reason, scope, source)"
                 " VALUES (:m, 'manual', 'all', 'api')"),
            {"m": emails[4]},
        )  # fmt: skip


async def test_retry_resends_exactly_the_retryable_failures_once(
    client, admin, engine, redis, clean_standin, start_worker
) -> None:
    emails = await factories.contacts(client, admin, 10)
    campaign = await factories.campaign(client, admin)
    cid = campaign["id"]
    start_worker()
    assert (await client.post(f"/v1/campaigns/{cid}/send", headers=admin)).status_code == 202
    await factories.wait_for_status(client, admin, cid, {"completed"}, 60)
    first_round = len(clean_standin.control.messages())
    assert first_round == len(emails)
    await _fail(engine, cid, emails)

    # two calls at the same moment: one retries, the other finds nothing left
    answers = await asyncio.gather(
        *(client.post(f"/v1/campaigns/{cid}/retry", headers=admin) for _ in range(2))
    )
    assert [a.status_code for a in answers] == [202, 202], [a.text for a in answers]
    assert sorted(a.json()["retried"] for a in answers) == [0, 2]

    done = await factories.wait_for_status(client, admin, cid, {"completed"}, 60)
    await wait_queues_idle(redis, ("arq:send",))
    later = clean_standin.control.messages()[first_round:]
    retryable = {e for e, (_, ok) in zip(emails, FAILURES, strict=False) if ok}
    assert Counter(m["Destination"]["ToAddresses"][0] for m in later) == Counter(retryable)
    assert done["stats"]["retried"] == 2
    assert done["stats"]["failed"] == len(FAILURES) - 2
    await assert_counters_add_up(engine, done["stats"], cid)
    statuses = {
        m["email"]: (m["status"], m["error"])
        for m in await factories.all_messages(client, admin, cid)
    }
    for email, (reason, ok) in zip(emails, FAILURES, strict=False):
        assert statuses[email] == (("sent", None) if ok else ("failed", reason))

    # the timeline counts every send SES accepted: the first round's ten and the two again
    timeline = (await client.get(f"/v1/campaigns/{cid}/timeline", headers=admin)).json()
    assert sum(b["sent"] for b in timeline["items"]) == len(emails) + 2

    # and again later: nothing more
    again = await client.post(f"/v1/campaigns/{cid}/retry", headers=admin)
    assert again.status_code == 202 and again.json()["retried"] == 0
    assert again.json()["campaign"]["status"] == "completed"


async def test_retry_of_a_draft_is_a_conflict(client, admin) -> None:
    campaign = await factories.campaign(client, admin)
    r = await client.post(f"/v1/campaigns/{campaign['id']}/retry", headers=admin)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "conflict"
    missing = await client.post("/v1/campaigns/999999/retry", headers=admin)
    assert missing.status_code == 404
