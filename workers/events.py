"""The events queue: SNS notifications applied by their own worker pool, so that a
million-recipient send on the send queue never delays a bounce or a complaint."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from mailer.config import get_settings
from mailer.db import create_engine, create_sessionmaker
from mailer.logging import configure_logging
from mailer.queues import EVENTS_QUEUE
from mailer.webhook.tasks import process_notifications, reconcile_notifications_forever


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings)
    engine = create_engine(settings, pool_size=4)
    ctx.update(settings=settings, engine=engine, sessionmaker=create_sessionmaker(engine))
    ctx["events_reconciler"] = asyncio.create_task(reconcile_notifications_forever(ctx))


async def shutdown(ctx: dict[str, Any]) -> None:
    task = ctx.get("events_reconciler")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if "engine" in ctx:
        await ctx["engine"].dispose()


class WorkerSettings:
    functions = [process_notifications]
    queue_name = EVENTS_QUEUE
    on_startup = startup
    on_shutdown = shutdown
    # a drain job takes every stored notification; a few at once share them (SKIP LOCKED)
    max_jobs = 4
    job_timeout = 600
    max_tries = 5
    poll_delay = 0.05
    idle_poll_delay = 0.5  # after a quiet spell (mailer.queues)
    keep_result = 0
