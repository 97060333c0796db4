"""SES account state per region: GetAccount polled by every send worker, stored in
``region_accounts`` and fed to that worker's rate limiter (no restart for a new rate)."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.config import Settings
from mailer.db import transaction
from mailer.ratelimit.limiter import RateLimiter
from mailer.reputation import account_rows

log = structlog.get_logger(__name__)


async def poll_accounts(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    transport: Any,
    limiter: RateLimiter,
) -> dict[str, dict[str, Any] | None]:
    """Read every region's GetAccount once, store it, and give the limiter a changed rate.

    A configured override (``MAILER_REGIONS=us-east-1=200``) wins over SES's rate; an
    endpoint that does not answer (moto) leaves the rate as it is.
    """
    answers: dict[str, dict[str, Any] | None] = {}
    for region in settings.regions:
        account = await transport.account(region)
        answers[region] = account
        async with transaction(sessionmaker) as session:
            await account_rows.save_account(
                session, region, account, None if account is not None else "GetAccount not answered"
            )
        rate = (account or {}).get("max_send_rate") or 0
        if region not in settings.region_rates and rate > 0 and limiter.rates.get(region) != rate:
            log.info("region_rate_changed", region=region, rate=rate, was=limiter.rates.get(region))
            limiter.set_rate(region, rate)
    return answers


async def poll_accounts_forever(
    settings: Settings,
    sessionmaker: async_sessionmaker[AsyncSession],
    transport: Any,
    limiter: RateLimiter,
) -> None:
    """Every ``account_poll_seconds``."""
    while True:
        try:
            await poll_accounts(settings, sessionmaker, transport, limiter)
        except Exception:  # noqa: BLE001 - the next round tries again
            log.warning("account_poll_failed", exc_info=True)
        await asyncio.sleep(settings.account_poll_seconds)
