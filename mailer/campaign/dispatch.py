"""Handing out a campaign's work as arq jobs, one per range of message ids.

Redis only holds what can be rebuilt: for each range, the id of the job that owns it
(``owner``) and, while a worker runs it, a heartbeat. The reconciler compares that with
PostgreSQL and enqueues a new job for every range whose queued work nobody holds: after
a Redis flush, or when a worker died.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from arq import ArqRedis

from mailer import queues
from mailer.locks import FENCED_SET
from mailer.queues import SEND_QUEUE


async def enqueue_start(
    redis: ArqRedis, campaign_id: int, *, at: datetime | None = None, job_id: str | None = None
) -> None:
    """The one way to queue ``start_campaign`` (safe to run twice): now, or at ``at``.

    ``job_id`` makes it one pending start per id (arq refuses a job id it still knows).
    """
    await queues.enqueue(
        redis, SEND_QUEUE, "start_campaign", campaign_id, job_id=job_id, defer_until=at
    )


def batch_range(first_id: int, size: int, batch: int) -> tuple[int, int]:
    lo = first_id + batch * size
    return lo, lo + size - 1


def _owner_key(campaign_id: int, batch: int) -> str:
    return f"mailer:batch:{campaign_id}:{batch}:owner"


def heartbeat_key(campaign_id: int, batch: int) -> str:
    return f"mailer:batch:{campaign_id}:{batch}:hb"


_OWNER_TTL = 7 * 86400


@dataclass(frozen=True, slots=True)
class Fence:
    """The reconciler's lock and token: a stale round's owner writes are refused."""

    lock_key: str
    token: str


async def enqueue_batch(
    redis: ArqRedis,
    campaign_id: int,
    batch: int,
    lo: int,
    hi: int,
    defer_until: datetime | None = None,
    fence: Fence | None = None,
    begin: bool = False,
) -> str | None:
    """Make a new job the owner of the range and queue it; None if ``fence`` refused.

    ``begin``: the campaign is scheduled; the job turns it ``sending`` when it runs.
    """
    job_id = f"send:{campaign_id}:{batch}:{uuid.uuid4().hex[:8]}"
    owner = _owner_key(campaign_id, batch)
    if fence is None:
        await redis.set(owner, job_id, ex=_OWNER_TTL)
    elif not await redis.register_script(FENCED_SET)(
        keys=[fence.lock_key, owner], args=[fence.token, job_id, _OWNER_TTL]
    ):
        return None
    extra = {"begin": True} if begin else {}
    await queues.enqueue(
        redis,
        SEND_QUEUE,
        "send_batch",
        campaign_id,
        batch,
        lo,
        hi,
        job_id=job_id,
        defer_until=defer_until,
        **extra,
    )
    return job_id


async def needs_jobs(redis: ArqRedis, campaign_id: int, batches: list[int]) -> list[int]:
    """The ``batches`` no live job holds: none recorded, finished, or its worker died.

    Two pipelined round trips whatever the number of batches: the owners, then each
    owner's job state (as ``arq.jobs.Job.status`` reads it) and heartbeat.
    """
    if not batches:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for batch in batches:
            pipe.get(_owner_key(campaign_id, batch))
        owners = await pipe.execute()
    owned = [
        (batch, owner.decode())
        for batch, owner in zip(batches, owners, strict=True)
        if owner is not None
    ]
    async with redis.pipeline(transaction=False) as pipe:
        for batch, job_id in owned:
            pipe.exists(queues.RESULT_KEY_PREFIX + job_id)
            pipe.exists(queues.IN_PROGRESS_KEY_PREFIX + job_id)
            pipe.zscore(SEND_QUEUE, job_id)
            pipe.exists(heartbeat_key(campaign_id, batch))
        states = await pipe.execute()
    live = set()
    for i, (batch, _) in enumerate(owned):
        complete, in_progress, score, beating = states[4 * i : 4 * i + 4]
        if complete:
            continue
        if (in_progress and beating) or (not in_progress and score is not None):
            live.add(batch)  # running with a heartbeat, or waiting in the queue
    return [batch for batch in batches if batch not in live]


async def release(redis: ArqRedis, campaign_id: int, batch: int) -> None:
    await redis.delete(_owner_key(campaign_id, batch), heartbeat_key(campaign_id, batch))
