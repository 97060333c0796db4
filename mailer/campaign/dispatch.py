"""Handing out a campaign's work as arq jobs, one per range of message ids.

Redis only holds what can be rebuilt: for each range, the id of the job that owns it
(``owner``) and, while a worker runs it, a heartbeat. The reconciler compares that with
PostgreSQL and enqueues a new job for every range whose queued work nobody holds: after
a Redis flush, or when a worker died.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from arq import ArqRedis
from arq.jobs import Job, JobStatus

from mailer.queues import SEND_QUEUE


async def enqueue_start(redis: ArqRedis, campaign_id: int, *, at: datetime | None = None,
                        job_id: str | None = None) -> None:
    """The one way to queue ``start_campaign`` (safe to run twice): now, or at ``at``.

    ``job_id`` makes it one pending start per id (arq refuses a job id it still knows).
    """
    await redis.enqueue_job("start_campaign", campaign_id, _queue_name=SEND_QUEUE,
                            _defer_until=at, _job_id=job_id)


def batch_range(first_id: int, size: int, batch: int) -> tuple[int, int]:
    lo = first_id + batch * size
    return lo, lo + size - 1


def _owner_key(campaign_id: int, batch: int) -> str:
    return f"mailer:batch:{campaign_id}:{batch}:owner"


def heartbeat_key(campaign_id: int, batch: int) -> str:
    return f"mailer:batch:{campaign_id}:{batch}:hb"


async def enqueue_batch(redis: ArqRedis, campaign_id: int, batch: int, lo: int, hi: int,
                        defer_until: datetime | None = None) -> str:
    job_id = f"send:{campaign_id}:{batch}:{uuid.uuid4().hex[:8]}"
    await redis.set(_owner_key(campaign_id, batch), job_id, ex=7 * 86400)
    await redis.enqueue_job("send_batch", campaign_id, batch, lo, hi, _job_id=job_id,
                            _queue_name=SEND_QUEUE, _defer_until=defer_until)
    return job_id


async def needs_job(redis: ArqRedis, campaign_id: int, batch: int) -> bool:
    """True when no live job holds the range: none recorded, finished, or its worker died."""
    owner = await redis.get(_owner_key(campaign_id, batch))
    if owner is None:
        return True
    status = await Job(owner.decode(), redis, _queue_name=SEND_QUEUE).status()
    if status in (JobStatus.queued, JobStatus.deferred):
        return False
    if status is JobStatus.in_progress:
        return not await redis.exists(heartbeat_key(campaign_id, batch))
    return True


async def release(redis: ArqRedis, campaign_id: int, batch: int) -> None:
    await redis.delete(_owner_key(campaign_id, batch), heartbeat_key(campaign_id, batch))
