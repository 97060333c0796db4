"""The transactional queue: its own arq queue and its own senders.

``mailer worker`` of several queues runs it in a child process of its own
(``mailer.queues.OWN_PROCESS``), with its own sending resources (``workers.context``):
SES client, rate limiter (where transactional mail books first; the region's slots are
shared with the campaign's processes through Redis), region health.
"""

from __future__ import annotations

from mailer.message.tasks import send_messages
from mailer.queues import TRANSACTIONAL_QUEUE
from workers.context import shutdown, startup


class WorkerSettings:
    functions = [send_messages]
    queue_name = TRANSACTIONAL_QUEUE
    on_startup = startup
    on_shutdown = shutdown
    # jobs are small (one request's messages); many at once keep the lane's senders fed
    max_jobs = 64
    # leases, not arq's timeout, recover the work of a dead worker
    job_timeout = 3600
    max_tries = 1000
    # a transactional message waits for the next poll: keep it short
    poll_delay = 0.01
    # ... while busy; after 5 s without a message the polls back off to 0.1 s
    # (mailer.queues): an idle lane polled 100 times a second took a campaign's CPU
    idle_poll_delay = 0.1
    busy_seconds = 5.0
    keep_result = 10
