"""Shared resources of a worker process, built once and kept in arq's ``ctx``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from redis.asyncio import Redis

from mailer import metrics
from mailer.campaign.tasks import CampaignPauser
from mailer.config import Settings, get_settings
from mailer.db import create_engine, create_sessionmaker
from mailer.logging import configure_logging
from mailer.ratelimit.limiter import RateLimiter
from mailer.reconciler import run_reconciler
from mailer.reputation.accounts import poll_accounts_forever
from mailer.reputation.tasks import compact_forever
from mailer.sending.configuration_sets import check_sets, check_sets_forever
from mailer.sending.lean import LeanSesTransport
from mailer.sending.regions import RegionHealth
from mailer.sending.sender import Sender
from mailer.sending.transport import SesTransport


def region_rates(
    settings: Settings, quotas: dict[str, dict[str, float] | None]
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


# The queues of one process run as arq workers that share these resources (one SES
# client, limiter, region health and Sender with its two lanes), built by whichever starts
# first and closed when the last one stops. (``mailer worker`` of several queues runs the
# transactional queue in a child process of its own, with resources of its own.)
_shared: dict[str, Any] = {}
_users = 0
_lock = asyncio.Lock()

POOL_SIZE = 10  # a worker process' database connections, opened and prepared at start-up

# the queues this process works on (``workers.main`` says before its workers start): the
# background work follows from them. The reconciler and the rollup compactor run where
# campaigns are sent; a process of the transactional lane alone (the child of a
# ``mailer worker`` of several queues) keeps what its own sends need: the account poll
# (its limiter's rates) and the configuration-set check.
_queues: set[str] = set()


def working_on(queues: list[str]) -> None:
    _queues.clear()
    _queues.update(queues)


def _runs_campaigns() -> bool:
    return not _queues or "send" in _queues


async def startup(ctx: dict[str, Any]) -> None:
    global _users
    async with _lock:
        if not _shared:
            await _build(_shared)
        _users += 1
    ctx.update(_shared)


async def shutdown(ctx: dict[str, Any]) -> None:
    global _users
    async with _lock:
        _users -= 1
        if _users > 0:
            return
        await _close(_shared)
        _shared.clear()


async def _build(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings)
    metrics.declare_known_labels(settings.configuration_sets, settings.regions)
    # no ping per checkout: a transactional message waits for every round trip, and the
    # send path's reads and writes drop a broken connection and retry on their own
    engine = create_engine(settings, pool_size=POOL_SIZE, pre_ping=False)
    sessionmaker = create_sessionmaker(engine)
    transport_class = LeanSesTransport if settings.ses_client == "lean" else SesTransport
    transport = transport_class(
        settings.ses_endpoint_url,
        max_in_flight=settings.send_concurrency + settings.transactional_concurrency,
        timeout=settings.ses_timeout_seconds,
    )
    quotas = await transport.open(settings.regions)
    redis = Redis.from_url(settings.redis_url)
    limiter = RateLimiter(redis, region_rates(settings, quotas))
    health = RegionHealth(
        redis,
        settings.regions,
        failure_threshold=settings.region_failure_threshold,
        open_seconds=settings.region_open_seconds,
    )

    sender = Sender(
        settings, sessionmaker, transport, limiter, health, CampaignPauser(sessionmaker)
    )
    await sender.warm(POOL_SIZE)
    # before the first claim: a class whose configuration set is missing sends nothing
    await check_sets(settings, transport, sender)
    ctx.update(
        settings=settings,
        engine=engine,
        sessionmaker=sessionmaker,
        transport=transport,
        limiter=limiter,
        health=health,
        plain_redis=redis,
        sender=sender,
    )
    ctx["account_poller"] = asyncio.create_task(
        poll_accounts_forever(settings, sessionmaker, transport, limiter)
    )
    ctx["set_checker"] = asyncio.create_task(check_sets_forever(settings, transport, sender))
    if _runs_campaigns():
        # the reconciler's own arq pool: it outlives either worker's
        arq_redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
        ctx["reconciler_redis"] = arq_redis
        ctx["reconciler"] = asyncio.create_task(run_reconciler({**ctx, "redis": arq_redis}))
        # the shared context has no arq "redis" (each queue's worker has its own): the
        # compactor's lock goes through the plain client
        ctx["rollup_compactor"] = asyncio.create_task(compact_forever({**ctx, "redis": redis}))


async def _close(ctx: dict[str, Any]) -> None:
    for name in ("reconciler", "account_poller", "set_checker", "rollup_compactor"):
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
        if "reconciler_redis" in ctx:
            await ctx["reconciler_redis"].aclose()
        await ctx["engine"].dispose()
