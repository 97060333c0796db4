"""The API configured for SNS (test certificate dir, allowed topic) and seeded sent mail."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailer.webhook.tasks import drain_notifications
from tests import factories
from tests.fixtures.sns import sns_app, sns_settings, sns_signer

__all__ = ["sns_app", "sns_settings", "sns_signer"]


@pytest.fixture
async def app(sns_app: object) -> object:
    return sns_app


async def post(client: httpx.AsyncClient, message: dict[str, Any] | bytes | str) -> httpx.Response:
    """POST as SNS does: text/plain, the message type in a header."""
    body = message if isinstance(message, bytes | str) else json.dumps(message)
    kind = message.get("Type", "") if isinstance(message, dict) else ""
    return await client.post(
        "/webhooks/sns",
        content=body,
        headers={"content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": str(kind)},
    )


async def process(sessionmaker: async_sessionmaker[AsyncSession]) -> int:
    """Run the events worker's drain once; the notifications it processed."""
    return (await drain_notifications(sessionmaker, 500)).notifications


async def seed_sent(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    engine: AsyncEngine,
    emails: list[str],
    mail_class: str = "marketing",
) -> tuple[int, dict[str, str]]:
    """A campaign whose messages to ``emails`` SES accepted: (campaign id, email → SES id)."""
    campaign = await factories.campaign(client, headers, mail_class=mail_class)
    ses = {e: f"0100-ses-{campaign['id']}-{i}" for i, e in enumerate(emails)}
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO contacts (email) SELECT unnest(CAST(:e AS text[]))"
                " ON CONFLICT (email) DO NOTHING"
            ),
            {"e": emails},
        )
        await conn.execute(
            text(
                """INSERT INTO messages (campaign_id, contact_id, email, mail_class, status, region,
                                     ses_message_id, sent_at)
               SELECT :c, ct.id, ct.email, :mc, 'sent', 'us-east-1', t.ses, now()
                 FROM unnest(CAST(:e AS text[]), CAST(:s AS text[])) AS t(email, ses)
                 JOIN contacts ct ON ct.email = t.email"""
            ),
            {"c": campaign["id"], "mc": mail_class, "e": list(ses), "s": list(ses.values())},
        )
        await conn.execute(
            text("UPDATE campaign_stats SET recipients = :n, sent = :n WHERE campaign_id = :c"),
            {"n": len(emails), "c": campaign["id"]},
        )
    return campaign["id"], ses


async def snapshot(engine: AsyncEngine) -> dict[str, Any]:
    """Everything the feedback loop may change, to show that something did not."""
    queries = {
        "notifications": "SELECT count(*) FROM sns_notifications",
        "events": "SELECT count(*) FROM events",
        "suppressions": "SELECT coalesce(json_agg(s ORDER BY email), '[]') FROM suppressions s",
        "contacts": "SELECT coalesce(json_agg(json_build_array(email, status) ORDER BY email),"
        " '[]') FROM contacts",
        "messages": "SELECT coalesce(json_agg(json_build_array(id, status) ORDER BY id), '[]')"
        " FROM messages",
        "stats": "SELECT coalesce(json_agg(s ORDER BY campaign_id), '[]') FROM campaign_stats s",
    }
    async with engine.connect() as conn:
        return {k: (await conn.execute(text(q))).scalar_one() for k, q in queries.items()}


async def stats(client: httpx.AsyncClient, headers: dict[str, str], campaign_id: int) -> dict:
    r = await client.get(f"/v1/campaigns/{campaign_id}", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["stats"]
