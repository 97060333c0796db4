"""arq's worker polls its queue every ``poll_delay`` seconds, busy or not: each poll is a
Redis round trip and a turn of the event loop. Three queues share a worker process, so an
idle queue polled 100 times a second (the transactional one) took CPU from the senders of
a campaign. This worker polls at ``poll_delay`` while it has jobs, and for ``busy_seconds``
after the last one started; after that the wait between polls doubles up to
``idle_poll_delay``. The first job after a quiet spell waits at most that long.

It also leaves out of each poll the jobs that are running, its own and other workers':
arq reads every due job id of the queue, running ones included (a job leaves the queue
when it ends), and checks each with a WATCH transaction of three round trips. Four workers
sending a campaign of twelve batches made ~30 of those round trips per poll, twenty polls
a second each: a tenth of a sending worker's py-spy samples. One pipelined EXISTS of the
in-progress keys leaves only the jobs nobody runs to arq's check (3 % of the samples).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from arq.constants import in_progress_key_prefix
from arq.worker import Worker


class BackoffWorker(Worker):
    def __init__(
        self, *args: Any, idle_poll_delay: float | None = None, busy_seconds: float = 2.0, **kw: Any
    ) -> None:
        super().__init__(*args, **kw)
        self.idle_poll_delay = max(idle_poll_delay or self.poll_delay_s, self.poll_delay_s)
        self.busy_seconds = busy_seconds
        self._last_busy = time.monotonic()
        self._extra = 0.0

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        running = self.tasks
        ids = [j for j in job_ids if j.decode() not in running]
        if ids:
            # running elsewhere: arq would skip them after its WATCH; one round trip for all
            async with self.pool.pipeline(transaction=False) as pipe:
                for job_id in ids:
                    pipe.exists(in_progress_key_prefix + job_id.decode())
                taken = await pipe.execute()
            ids = [j for j, held in zip(ids, taken, strict=True) if not held]
        # arq's own check (WATCH, in progress, score) still guards each job started
        await super().start_jobs(ids)

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
