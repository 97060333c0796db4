"""Helpers for reputation tests: campaigns over a segment, sent message ids, events."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailer.campaign import repository as campaigns
from mailer.config import Settings
from mailer.db import transaction
from mailer.reputation import service as reputation
from tests import factories


async def campaign_for(
    client: httpx.AsyncClient, headers: dict[str, str], prefix: str, **body: Any
) -> int:
    """Create and send a campaign to the contacts whose address starts with ``prefix``."""
    segment = await factories.segment(
        client, headers, {"field": "email", "op": "starts_with", "value": prefix}
    )
    campaign = await factories.campaign(
        client, headers, segment_id=segment["id"], name=f"{prefix} campaign", **body
    )
    r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=headers)
    assert r.status_code == 202, r.text
    return int(campaign["id"])


async def stat(engine: AsyncEngine, campaign_id: int, name: str = "sent") -> int:
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(f"SELECT {name} FROM campaign_stats WHERE campaign_id = :id"),  # noqa: S608
                    {"id": campaign_id},
                )
            ).scalar_one()
        )


async def campaign_status(engine: AsyncEngine, campaign_id: int) -> tuple[str, str | None]:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT status, paused_reason FROM campaigns WHERE id = :id"),
                {"id": campaign_id},
            )
        ).one()
    return row.status, row.paused_reason


async def wait_stat(
    engine: AsyncEngine, campaign_id: int, at_least: int, within: float = 60.0
) -> int:
    deadline = time.monotonic() + within
    while True:
        seen = await stat(engine, campaign_id)
        if seen >= at_least:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"campaign {campaign_id} sent {seen}, wanted {at_least}")
        await asyncio.sleep(0.05)


async def sent_ids(engine: AsyncEngine, campaign_id: int, n: int, offset: int = 0) -> list[int]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT id FROM messages WHERE campaign_id = :id AND status = 'sent'"
                " ORDER BY id OFFSET :offset LIMIT :n"
            ),
            {"id": campaign_id, "n": n, "offset": offset},
        )
        return [r.id for r in rows]


async def apply(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings, items: list[tuple[int, str]]
) -> list[str]:
    """One processing cycle: the events of one notification, applied and committed."""
    async with transaction(sessionmaker) as session:
        return await reputation.on_events(
            session, settings, [(i, k, None) for i, k in items], campaigns.pause
        )


async def sent_messages(
    engine: AsyncEngine, campaign_id: int, n: int, offset: int = 0
) -> list[tuple[str, str]]:
    """(SES message id, address) of ``n`` messages of the campaign SES accepted."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT ses_message_id, email FROM messages WHERE campaign_id = :id"
                " AND status = 'sent' ORDER BY id OFFSET :offset LIMIT :n"
            ),
            {"id": campaign_id, "n": n, "offset": offset},
        )
        return [(r.ses_message_id, r.email) for r in rows]


async def notify(
    client: httpx.AsyncClient, signer: Any, kind: str, sid: str, email: str, **options: Any
) -> str:
    """POST one signed SNS notification of an SES event; its SNS MessageId."""
    from tests.fixtures.sns import ses_event
    from tests.webhook.conftest import post

    message = signer.notification(ses_event(kind, sid, [email], **options))
    r = await post(client, message)
    assert r.status_code == 200, r.text
    return message["MessageId"]  # type: ignore[no-any-return]


async def wait_processed(
    engine: AsyncEngine, sns_message_ids: list[str], within: float = 30.0
) -> None:
    """Until the events worker has processed these notifications."""
    deadline = time.monotonic() + within
    while True:
        async with engine.connect() as conn:
            left = (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM sns_notifications WHERE processed_at IS NULL"
                        " AND sns_message_id = ANY(CAST(:ids AS text[]))"
                    ),
                    {"ids": sns_message_ids},
                )
            ).scalar_one()
        if left == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{left} notifications not processed after {within}s")
        await asyncio.sleep(0.02)
