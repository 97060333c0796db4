"""The send queue: launching campaigns and sending their batches."""

from __future__ import annotations

from mailer.campaign.dispatch import SEND_QUEUE
from mailer.campaign.tasks import send_batch, start_campaign
from workers.context import shutdown, startup


class WorkerSettings:
    functions = [start_campaign, send_batch]
    queue_name = SEND_QUEUE
    on_startup = startup
    on_shutdown = shutdown
    max_jobs = 8
    # leases, not arq's timeout, recover the work of a dead worker
    job_timeout = 6 * 3600
    max_tries = 1000
    poll_delay = 0.05
    # polls back off to this after a quiet spell (mailer.queues); a scheduled campaign's
    # start job runs 2 s before its batches are due, which keeps the queue busy for them
    idle_poll_delay = 0.25
    busy_seconds = 5.0
    keep_result = 60
