"""Transactional jobs (arq): send by message ids, pick up lost work, sweep old keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog
from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.db import transaction
from mailer.message import repository
from mailer.message.service import enqueue_send
from mailer.sending.sender import Sender

log = structlog.get_logger(__name__)

LOST_BATCH = 100


async def send_messages(ctx: dict[str, Any], ids: list[int]) -> dict:
    """Send these transactional messages (those still queued and due: safe to run twice);
    come back when a retry of any of them is due."""
    sender: Sender = ctx["sender"]
    report = await sender.send_messages(ids)
    if report.next_due is not None:
        await enqueue_send(ctx["redis"], ids, defer_until=max(report.next_due, datetime.now(UTC)))
    return {"claimed": report.claimed, **report.outcomes}


async def requeue_lost(
    sessionmaker: async_sessionmaker[AsyncSession],
    redis: ArqRedis,
    grace: float,
    limit: int = 10_000,
) -> int:
    """Enqueue again the transactional messages due for over ``grace`` seconds that no job
    took (a Redis flush, a worker that died holding them); how many."""
    async with sessionmaker() as session:
        ids = await repository.lost(session, grace, limit)
    for start in range(0, len(ids), LOST_BATCH):
        await enqueue_send(redis, ids[start : start + LOST_BATCH])
    if ids:
        log.info("transactional_requeued", messages=len(ids))
    return len(ids)


async def sweep_idempotency_keys(ctx: dict[str, Any]) -> int:
    """Forget idempotency keys older than ``idempotency_key_hours`` (periodic)."""
    async with transaction(ctx["sessionmaker"]) as session:
        swept = await repository.sweep_keys(session, ctx["settings"].idempotency_key_hours)
    if swept:
        log.info("idempotency_keys_swept", keys=swept)
    return swept
