"""Reputation upkeep in the send workers: old minute buckets folded into hours."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from mailer.db import transaction
from mailer.reputation import repository

log = structlog.get_logger(__name__)

COMPACT_SECONDS = 300.0
_LOCK = "mailer:reputation:compact"


async def compact_forever(ctx: dict[str, Any], interval: float = COMPACT_SECONDS) -> None:
    """One worker at a time (a Redis lock), every ``interval`` seconds."""
    while True:
        try:
            if await ctx["redis"].set(_LOCK, "1", px=int(interval * 900), nx=True):
                async with transaction(ctx["sessionmaker"]) as session:
                    await repository.compact(session)
        except Exception:  # noqa: BLE001 - the next round tries again
            log.warning("reputation_compact_failed", exc_info=True)
        await asyncio.sleep(interval)
