"""Which workers are alive, for the API's ``mailer_workers_seen`` gauge: every ``mailer
worker`` process writes a heartbeat per queue it works on into Redis (a sorted set per
queue, scored with Redis' clock so machines' clocks do not matter); a queue whose set holds
no heartbeat younger than ``SEEN_SECONDS`` has no worker: an alertable 0."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

BEAT_SECONDS = 5.0
SEEN_SECONDS = 20.0  # four beats missed: the worker is gone
KEY = "mailer:workers:{queue}"


async def _now(redis: Any) -> float:
    seconds, micros = await redis.time()
    return float(seconds) + micros / 1e6


async def beat(redis: Any, queues: Iterable[str], member: str) -> None:
    """One heartbeat of ``member`` (host:pid) for each of ``queues``; old ones dropped."""
    now = await _now(redis)
    async with redis.pipeline(transaction=False) as pipe:
        for queue in queues:
            key = KEY.format(queue=queue)
            pipe.zadd(key, {member: now})
            pipe.zremrangebyscore(key, "-inf", now - SEEN_SECONDS)
            pipe.expire(key, int(SEEN_SECONDS * 3))
        await pipe.execute()


async def beat_forever(redis: Any, queues: list[str], member: str) -> None:
    while True:
        try:
            await beat(redis, queues, member)
        except Exception as exc:  # noqa: BLE001 - Redis away: the next beat tries again
            log.warning("worker_heartbeat_failed", error=repr(exc))
        await asyncio.sleep(BEAT_SECONDS)


async def forget(redis: Any, queues: Iterable[str], member: str) -> None:
    """A worker that stops says so at once, rather than after ``SEEN_SECONDS``."""
    with contextlib.suppress(Exception):
        async with redis.pipeline(transaction=False) as pipe:
            for queue in queues:
                pipe.zrem(KEY.format(queue=queue), member)
            await pipe.execute()


async def workers_seen(redis: Any, queues: Iterable[str]) -> dict[str, int]:
    """Worker processes with a recent heartbeat, per queue."""
    now = await _now(redis)
    return {
        queue: int(await redis.zcount(KEY.format(queue=queue), now - SEEN_SECONDS, "+inf"))
        for queue in queues
    }
