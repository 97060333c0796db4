"""The arq queues: named once, and the one way work is put on them.

Every job is queued by :func:`enqueue` (or, for a job that must not exist before the
transaction that calls for it commits, :func:`enqueue_after_commit`). This module is the
only one that knows arq's private layout (its Redis keys, its serialized jobs, its
worker's poll loop: :class:`BackoffWorker`); ``tests/test_queues.py`` fails when an arq
upgrade changes any of it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any
from uuid import uuid4

from arq import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms, to_unix_ms
from arq.worker import Worker
from redis.commands.core import AsyncScript
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.db import after_commit

SEND_QUEUE = "arq:send"  # campaign starts and batches
TRANSACTIONAL_QUEUE = "arq:transactional"  # transactional messages: the priority lane
EVENTS_QUEUE = "arq:events"  # SNS notifications to process (the feedback loop)
IMPORT_QUEUE = "arq:imports"  # CSV contact imports (and the key sweep, the MX look-ups)
WEBHOOKS_QUEUE = "arq:webhooks"  # outgoing webhook deliveries (mailer.webhook_out)

# ``mailer worker --queues`` names → arq queues
QUEUES: dict[str, str] = {
    "send": SEND_QUEUE,
    "transactional": TRANSACTIONAL_QUEUE,
    "events": EVENTS_QUEUE,
    "imports": IMPORT_QUEUE,
    "webhooks": WEBHOOKS_QUEUE,
}

# Worked in a process of their own by a ``mailer worker`` of several queues: parsing a
# CSV file is CPU work that must not hold the event loop the SES calls in flight need, and
# each step of a transactional message is a turn of its event loop, which must not wait
# behind a campaign's senders (bench/README.md, "Why the code is so"). Its slots still come
# before marketing's: the limiter's state in Redis is shared by every process. The deliverer
# of outgoing webhooks too: its requests never take a turn from the senders.
OWN_PROCESS = ("imports", "transactional", "webhooks")


# arq's keys of a job: its result once it ended, and its mark while it runs
RESULT_KEY_PREFIX = result_key_prefix
IN_PROGRESS_KEY_PREFIX = in_progress_key_prefix


async def enqueue(
    redis: ArqRedis,
    queue: str,
    function: str,
    *args: Any,
    job_id: str | None = None,
    defer_until: datetime | None = None,
    **kwargs: Any,
) -> None:
    """Queue ``function(*args, **kwargs)`` on ``queue`` (every job must be safe to run twice).

    ``job_id``: one pending job per id (arq refuses an id it still knows, checked under
    WATCH: three round trips). Without one, the job gets a fresh random id and is written
    the way ``ArqRedis.enqueue_job`` writes it (the job under its key, its id in the
    queue) in one MULTI/EXEC round trip: the guard has nothing to guard then.
    """
    if job_id is not None:
        await redis.enqueue_job(
            function, *args, _job_id=job_id, _queue_name=queue, _defer_until=defer_until, **kwargs
        )
        return
    new_id = uuid4().hex
    now = timestamp_ms()
    score = to_unix_ms(defer_until) if defer_until is not None else now
    job = serialize_job(function, args, kwargs, None, now, serializer=redis.job_serializer)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.psetex(job_key_prefix + new_id, score - now + redis.expires_extra_ms, job)
        pipe.zadd(queue, {new_id: score})
        await pipe.execute()


def enqueue_after_commit(
    session: AsyncSession, redis: ArqRedis, queue: str, function: str, *args: Any, **kw: Any
) -> None:
    """:func:`enqueue` once ``session``'s transaction has committed (never for a rolled-back
    row; a lost enqueue is the reconciler's to find)."""

    async def run() -> None:
        await enqueue(redis, queue, function, *args, **kw)

    after_commit(session, run)


# -- the worker's poll loop ------------------------------------------------------------------
# arq's worker polls its queue every ``poll_delay`` seconds, busy or not: each poll is a
# Redis round trip and a turn of the event loop. Three queues share a worker process, so an
# idle queue polled 100 times a second (the transactional one) took CPU from the senders of
# a campaign. This worker polls at ``poll_delay`` while it has jobs, and for ``busy_seconds``
# after the last one started; after that the wait between polls doubles up to
# ``idle_poll_delay``. The first job after a quiet spell waits at most that long.
#
# It also starts the jobs of a poll in one round trip: arq reads every due job id of the
# queue, running ones included (a job leaves the queue when it ends), and checks each in
# turn with a WATCH transaction of four round trips (WATCH, EXISTS, ZSCORE, MULTI/EXEC),
# so a new job waits behind four round trips for every job before it, the ones running in
# other workers included. One Lua script does the same checks for the whole poll, on the
# Redis side, and marks the jobs it may start as in progress; the jobs it runs itself are
# left out of the poll.

# Which of the polled jobs this worker may start: not in progress anywhere, still in the
# queue and due (what arq's start_jobs checks under WATCH), at most ARGV[3] of them; each
# one started is marked in progress (ARGV[2] ms) in the same step, so two workers polling
# together never both start a job. Returns id, score, id, score, ...
_START = """
local queue = KEYS[1]
local now = tonumber(ARGV[1])
local in_progress_ms = ARGV[2]
local free = tonumber(ARGV[3])
local prefix = ARGV[4]
local started = {}
for i = 5, #ARGV do
  if free <= 0 then break end
  local id = ARGV[i]
  if redis.call('EXISTS', prefix .. id) == 0 then
    local score = redis.call('ZSCORE', queue, id)
    if score and tonumber(score) <= now then
      redis.call('PSETEX', prefix .. id, in_progress_ms, '1')
      started[#started + 1] = id
      started[#started + 1] = score
      free = free - 1
    end
  end
end
return started
"""


class BackoffWorker(Worker):
    def __init__(
        self, *args: Any, idle_poll_delay: float | None = None, busy_seconds: float = 2.0, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.idle_poll_delay = max(idle_poll_delay or self.poll_delay_s, self.poll_delay_s)
        self.busy_seconds = busy_seconds
        self._last_busy = time.monotonic()
        self._extra = 0.0
        self._start_script: AsyncScript | None = None

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        running = self.tasks
        candidates = [j.decode() for j in job_ids]
        candidates = [j for j in candidates if j not in running]
        free = self.max_jobs - self.job_counter
        if not candidates or free <= 0:
            return
        if self._start_script is None:
            self._start_script = self.pool.register_script(_START)
        answer = await self._start_script(
            keys=[self.queue_name],
            args=[
                timestamp_ms(),
                int(self.in_progress_timeout_s * 1000),
                free,
                in_progress_key_prefix,
                *candidates,
            ],
        )
        for job_id_b, score_b in zip(answer[::2], answer[1::2], strict=True):
            # never blocks: job_counter < max_jobs leaves the semaphore (max_jobs + 1) free
            await self.sem.acquire()
            self.job_counter += 1
            job_id = job_id_b.decode()
            task = self.loop.create_task(self.run_job(job_id, int(float(score_b))))
            task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
            self.tasks[job_id] = task

    async def _poll_iteration(self) -> None:
        started = self._jobs_started()
        await super()._poll_iteration()
        now = time.monotonic()
        if self._jobs_started() != started or self.tasks:
            self._last_busy = now
            self._extra = 0.0
            return
        if now - self._last_busy < self.busy_seconds or not self.allow_pick_jobs:
            return
        # arq's own wait is poll_delay after this returns: sleep the rest of the backoff
        self._extra = min(max(self._extra * 2, self.poll_delay_s), self.idle_poll_delay)
        await asyncio.sleep(max(self._extra - self.poll_delay_s, 0.0))
