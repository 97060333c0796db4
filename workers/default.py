"""The default queue: jobs that are neither sending nor feedback (CSV contact imports)."""

from __future__ import annotations

from arq.connections import RedisSettings

from mailer.config import get_settings
from mailer.contact.service import IMPORT_QUEUE
from mailer.contact.tasks import IMPORT_TRIES, import_contacts
from workers.context import shutdown, startup


class WorkerSettings:
    functions = [import_contacts]
    queue_name = IMPORT_QUEUE
    on_startup = startup
    on_shutdown = shutdown
    max_jobs = 2
    # an import resumes after its last committed chunk, so a job held by a dead worker may
    # be taken up again after this long; a million rows take well under it
    job_timeout = 1800
    max_tries = IMPORT_TRIES
    poll_delay = 0.2
    keep_result = 3600
    redis_settings = RedisSettings.from_dsn(get_settings().redis_url)
