"""GET /v1/campaigns/{id}/recipients.csv: every recipient, streamed; erased stay erased."""

from __future__ import annotations

import csv
import io

from sqlalchemy import text

from mailer.campaign import results as reports
from tests.engagement.conftest import CHROME, IPHONE_MAIL, click_event, deliver, open_event, sent_at
from tests.webhook.conftest import seed_sent


async def test_recipients_csv_streams_status_times_engagement_and_reasons(
    client, admin, engine, sessionmaker, sns_signer, monkeypatch
) -> None:
    monkeypatch.setattr(reports, "CHUNK", 2)  # several chunks for a handful of rows
    emails = [f"r{i}@example.com" for i in range(5)]
    campaign_id, ses = await seed_sent(client, admin, engine, emails)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE campaigns SET first_message_id = (SELECT min(id) FROM messages),"
                 " last_message_id = (SELECT max(id) FROM messages) WHERE id = :c"),
            {"c": campaign_id},
        )  # fmt: skip
        await conn.execute(
            text("UPDATE messages SET status = 'failed', error = 'MessageRejected: content',"
                 " sent_at = NULL WHERE email = 'r4@example.com'"),
        )  # fmt: skip
    t = sent_at()
    await deliver(
        client,
        sns_signer,
        sessionmaker,
        [
            open_event(ses[emails[0]], emails[0], t, 600, IPHONE_MAIL),
            open_event(ses[emails[0]], emails[0], t, 700, "Mozilla/5.0"),
            click_event(ses[emails[0]], emails[0], t, 650, CHROME, "https://a.example/"),
            open_event(ses[emails[3]], emails[3], t, 600, IPHONE_MAIL),
        ],
    )
    erase = await client.delete(f"/v1/contacts/{emails[3]}", headers=admin)
    assert erase.status_code in (200, 202), erase.text

    r = await client.get(f"/v1/campaigns/{campaign_id}/recipients.csv", headers=admin)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["email"] for row in table] == [*emails[:3], "", emails[4]]
    first = table[0]
    assert (first["status"], first["opens"], first["human_opens"], first["clicks"]) == (
        "sent",
        "2",
        "1",
        "1",
    )
    assert first["first_open_at"] and first["first_click_at"] and first["sent_at"]
    assert table[1]["opens"] == "0" and table[1]["first_open_at"] == ""
    assert table[3]["opens"] == "1"  # erased: the numbers stay, the address does not
    assert emails[3] not in r.text
    assert (table[4]["status"], table[4]["failure_reason"], table[4]["sent_at"]) == (
        "failed",
        "MessageRejected: content",
        "",
    )

    missing = await client.get("/v1/campaigns/999999/recipients.csv", headers=admin)
    assert missing.status_code == 404
