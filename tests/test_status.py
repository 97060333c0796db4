"""``mailer status``: campaigns, queues, regions and reputation as terminal tables."""

from __future__ import annotations

from sqlalchemy import text

from mailer.config import Settings
from tests import factories
from tests.test_cli import mailer


async def test_status_shows_campaigns_queues_regions_reputation_and_pauses(
    settings: Settings, client, admin, engine, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    campaign = await factories.campaign(client, admin, name="Spring sale")
    cid = campaign["id"]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE campaigns SET status = 'paused', paused_reason = 'auto-pause: campaign"
                " bounce rate 8.00% over the 5.00% threshold' WHERE id = :id"
            ),
            {"id": cid},
        )
        await conn.execute(
            text(
                "UPDATE campaign_stats SET recipients = 1000, sent = 800, queued = 200"
                " WHERE campaign_id = :id"
            ),
            {"id": cid},
        )
        await conn.execute(
            text(
                "INSERT INTO reputation_minutes (minute, mail_class, region, configuration_set,"
                " campaign_id, sent, hard_bounces, complaints)"
                " VALUES (date_trunc('minute', now()), 'marketing', 'us-east-1', 'marketing', :id,"
                " 800, 64, 1)"
            ),
            {"id": cid},
        )
        await conn.execute(
            text(
                "INSERT INTO auto_pauses (scope, mail_class, campaign_id, campaigns, reason)"
                " VALUES ('campaign', 'marketing', :id, 1, 'auto-pause: campaign bounce rate 8.00%"
                " over the 5.00% threshold')"
            ),
            {"id": cid},
        )
        await conn.execute(
            text(
                "INSERT INTO region_accounts (region, max_send_rate, max_24h_send, sent_last_24h,"
                " sending_enabled, enforcement_status, production_access)"
                " VALUES ('us-east-1', 14, 50000, 1234, true, 'HEALTHY', true)"
            )
        )
    monkeypatch.setenv("COLUMNS", "300")  # rich wraps at 80 columns without a terminal
    result = mailer(settings, "status")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for title in (
        "campaigns",
        "queues",
        "regions (SES account)",
        "reputation",
        "recent automatic pauses",
    ):
        assert title in out
    assert "Spring sale" in out and "80.0%" in out and "paused" in out
    assert "arq:send" in out and "arq:events" in out
    assert "50,000" in out and "1,234" in out and "HEALTHY" in out
    assert "8.00%" in out and "0.125%" in out  # 64 / 800 and 1 / 800


async def test_status_fits_an_80_column_terminal(  # type: ignore[no-untyped-def]
    settings: Settings, client, admin, engine, monkeypatch
) -> None:
    await factories.campaign(client, admin, name="Spring sale for every marketing reader")
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO region_accounts (region, max_send_rate, max_24h_send, sent_last_24h,"
                " sending_enabled, enforcement_status, production_access)"
                " VALUES ('us-east-1', 14, 50000, 1234, true, 'HEALTHY', true)"
            )
        )
    monkeypatch.setenv("COLUMNS", "80")
    result = mailer(settings, "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert "…" not in result.stdout  # no cell cut short
    out = result.stdout
    assert "Spring sale for every marketing reader" in out.replace("\n", " ") or "Spring" in out
    assert "marketing" in out and "draft" in out and "50,000" in out
    # every column is still there with --wide (cut to fit), and in --json
    wide = mailer(settings, "status", "--wide")
    assert "complained" in wide.stdout or "compl" in wide.stdout
    as_json = mailer(settings, "status", "--json")
    import json

    tables = {t["title"]: t["rows"] for t in json.loads(as_json.stdout)}
    (row,) = tables["campaigns"]
    assert row["name"] == "Spring sale for every marketing reader" and row["status"] == "draft"
    assert "complained" in row and tables["regions (SES account)"][0]["enforcement"] == "HEALTHY"
