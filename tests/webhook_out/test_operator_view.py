"""The operator view: Prometheus counts deliveries by outcome and the backlog's age; the
dashboard shows endpoints, their failure rate and their backlog."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailer.db import transaction
from mailer.webhook_out import outbox
from mailer.webhook_out.delivery import Deliverer
from mailer.webhook_out.metrics import DELIVERIES
from tests.ops.test_metrics import scrape, value
from tests.webhook_out.conftest import Receiver, add_endpoint


async def test_metrics_backlog_and_outcomes(
    client: httpx.AsyncClient,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    receiver: Receiver,
    deliverer: Deliverer,
) -> None:
    await add_endpoint(sessionmaker, receiver.url)
    async with transaction(sessionmaker) as session:
        for n in range(3):
            await outbox.emit(session, "webhook.test", {"n": n})
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE webhook_deliveries SET created_at = now() - interval '90 seconds'")
        )
    before = await scrape(client)
    assert value(before, "mailer_webhook_backlog") == 3
    assert value(before, "mailer_webhook_backlog_age_seconds") >= 90

    delivered = DELIVERIES.labels("delivered")._value.get()
    await deliverer.drain()
    after = await scrape(client)
    assert value(after, "mailer_webhook_backlog") == 0
    assert value(after, "mailer_webhook_backlog_age_seconds") == 0
    # counted in the process that delivers (the API's /metrics adds up every process')
    assert DELIVERIES.labels("delivered")._value.get() == delivered + 3


async def _login(client: httpx.AsyncClient, key: str) -> None:
    page = await client.get("/dashboard/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    r = await client.post("/dashboard/login", data={"key": key, "csrf": csrf})
    assert r.status_code == 303, r.text


async def test_dashboard_shows_endpoints_failure_rate_and_backlog(
    client: httpx.AsyncClient,
    admin_key: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
) -> None:
    failing, _ = await add_endpoint(sessionmaker, "https://down.example.com/hook")
    async with transaction(sessionmaker) as session:
        for n in range(4):
            await outbox.emit(session, "webhook.test", {"n": n})
    async with engine.begin() as conn:
        # three failed on their last attempt, one delivered; the endpoint was disabled
        await conn.execute(
            text(
                "UPDATE webhook_deliveries SET last_attempt_at = now(), last_status_code = 503,"
                " attempts = 2 WHERE id IN (1, 2, 3)"
            )
        )
        await conn.execute(
            text(
                "UPDATE webhook_deliveries SET status = 'delivered', last_attempt_at = now(),"
                " last_status_code = 200 WHERE id = 4"
            )
        )
        await conn.execute(
            text(
                "UPDATE webhook_endpoints SET enabled = false, consecutive_failures = 120,"
                " disabled_reason = 'disabled after 120 failed attempts in a row'"
            )
        )
    await _login(client, admin_key)
    page = await client.get("/dashboard")
    assert page.status_code == 200
    row = re.search(rf'<tr id="webhook-{failing}".*?</tr>', page.text, re.S)
    assert row is not None
    html = row.group(0)
    assert 'data-enabled="false"' in html
    assert "disabled after 120 failed attempts in a row" in html
    cells = re.findall(r'<td class="num">([^<]*)</td>', html)
    # backlog, oldest pending, delivered, failing, failure rate, dead
    assert cells[0] == "3"
    assert cells[2:] == ["1", "3", "75.0 %", "0"]
