"""The ``webhooks`` queue's job: wake the worker's deliverer (events just written by hand:
a test event, a retry, a replay). The deliverer also polls, so a lost wake-up only costs
``webhooks_poll_seconds``; events written by the send path and the feedback loop are
found by that poll (no Redis round trip on their hot paths)."""

from __future__ import annotations

import contextlib
from typing import Any

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.db import after_commit
from mailer.queues import WEBHOOKS_QUEUE

WAKE_JOB = "deliver_webhooks"


async def deliver_webhooks(ctx: dict[str, Any]) -> None:
    """Look for due deliveries now."""
    ctx["deliverer"].wake()


def wake_after_commit(session: AsyncSession, arq: Any) -> None:
    """Enqueue a wake-up once ``session``'s transaction has committed."""

    async def _wake() -> None:
        # lost: the deliverer's poll finds the rows all the same
        with contextlib.suppress(RedisError, OSError):
            await arq.enqueue_job(WAKE_JOB, _queue_name=WEBHOOKS_QUEUE)

    after_commit(session, _wake)
