"""Shared resources of a worker process, built once and kept in arq's ``ctx``."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from mailer.campaign.tasks import pause_mail_class, reconcile_forever
from mailer.config import Settings, get_settings
from mailer.db import create_engine, create_sessionmaker
from mailer.logging import configure_logging
from mailer.ratelimit.limiter import RateLimiter
from mailer.reputation.accounts import poll_accounts_forever
from mailer.reputation.tasks import compact_forever
from mailer.sending.regions import RegionHealth
from mailer.sending.service import Sender
from mailer.sending.transport import SesTransport


def region_rates(settings: Settings, quotas: dict[str, dict[str, float] | None]
                 ) -> dict[str, float]:
    """Configured override, else SES GetAccount MaxSendRate, else the sandbox default."""
    rates = {}
    for region in settings.regions:
        rate = settings.region_rates.get(region)
        if rate is None:
            quota = quotas.get(region)
            rate = quota["max_send_rate"] if quota and quota["max_send_rate"] > 0 else None
        rates[region] = float(rate or settings.default_rate)
    return rates


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings)
    engine = create_engine(settings, pool_size=10)
    sessionmaker = create_sessionmaker(engine)
    transport = SesTransport(settings.ses_endpoint_url, max_in_flight=settings.send_concurrency,
                             timeout=settings.ses_timeout_seconds)
    quotas = await transport.open(settings.regions)
    redis = Redis.from_url(settings.redis_url)
    limiter = RateLimiter(redis, region_rates(settings, quotas))
    health = RegionHealth(redis, settings.regions,
                          failure_threshold=settings.region_failure_threshold,
                          open_seconds=settings.region_open_seconds)

    async def on_class_paused(mail_class: str, reason: str, call_started: datetime) -> None:
        await pause_mail_class(sessionmaker, mail_class, reason, call_started)

    ctx.update(
        settings=settings, engine=engine, sessionmaker=sessionmaker, transport=transport,
        limiter=limiter, health=health, plain_redis=redis,
        sender=Sender(settings, sessionmaker, transport, limiter, health, on_class_paused),
    )
    ctx["reconciler"] = asyncio.create_task(reconcile_forever(ctx))
    ctx["account_poller"] = asyncio.create_task(
        poll_accounts_forever(settings, sessionmaker, transport, limiter))
    ctx["rollup_compactor"] = asyncio.create_task(compact_forever(ctx))


async def shutdown(ctx: dict[str, Any]) -> None:
    for name in ("reconciler", "account_poller", "rollup_compactor"):
        task = ctx.get(name)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if "sender" in ctx:
        await ctx["sender"].close()
        await ctx["limiter"].close()
        await ctx["transport"].close()
        await ctx["plain_redis"].aclose()
        await ctx["engine"].dispose()
