"""The imports queue: CSV contact imports, in a process of their own (``mailer.queues``),
and the periodic jobs that need only the database (and DNS).

Its jobs need only the database, so it builds only that: ``workers.context.startup`` would
start a second SES client, rate limiter and campaign reconciler in every ``mailer worker``
process, which already runs them for the send queue.
"""

from __future__ import annotations

from typing import Any

from arq.cron import cron

from mailer.config import get_settings
from mailer.contact.tasks import IMPORT_TRIES, import_contacts, resume_imports
from mailer.db import create_engine, create_sessionmaker
from mailer.engagement.tasks import refresh_domain_mx
from mailer.logging import configure_logging
from mailer.message.tasks import sweep_idempotency_keys
from mailer.queues import IMPORT_QUEUE


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings)
    engine = create_engine(settings, pool_size=4)
    ctx.update(settings=settings, engine=engine, sessionmaker=create_sessionmaker(engine))


async def shutdown(ctx: dict[str, Any]) -> None:
    if "engine" in ctx:
        await ctx["engine"].dispose()


class WorkerSettings:
    functions = [import_contacts]
    # Redis holds only what can be rebuilt: imports whose job was lost are enqueued again
    cron_jobs = [
        cron(resume_imports, second={0}, run_at_startup=True),
        cron(sweep_idempotency_keys, minute=set(range(0, 60, 10)), second={30}),
        # recipient domains' MX for the provider reports: off every report's path
        cron(refresh_domain_mx, minute=set(range(2, 60, 5)), second={15}, timeout=120),
    ]
    queue_name = IMPORT_QUEUE
    on_startup = startup
    on_shutdown = shutdown
    max_jobs = 2
    # an import resumes after its last committed chunk, so a job held by a dead worker may
    # be taken up again after this long; a million rows take well under it
    job_timeout = 1800
    max_tries = IMPORT_TRIES
    poll_delay = 0.2
    idle_poll_delay = 1.0  # after a quiet spell (mailer.queues)
    keep_result = 3600
