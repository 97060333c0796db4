"""The webhooks queue: the deliverer of outgoing webhooks, in a process of its own
(``mailer.queues.OWN_PROCESS``), apart from the send path and the SNS events queue."""

from __future__ import annotations

from typing import Any

from arq.connections import RedisSettings

from mailer.config import get_settings
from mailer.db import create_engine, create_sessionmaker
from mailer.logging import configure_logging
from mailer.queues import WEBHOOKS_QUEUE
from mailer.webhook_out.delivery import Deliverer
from mailer.webhook_out.tasks import deliver_webhooks


async def startup(ctx: dict[str, Any]) -> None:
    settings = get_settings()
    configure_logging(settings)
    engine = create_engine(settings, pool_size=4)
    deliverer = Deliverer(settings, create_sessionmaker(engine))
    deliverer.start()
    ctx.update(settings=settings, engine=engine, deliverer=deliverer)


async def shutdown(ctx: dict[str, Any]) -> None:
    if "deliverer" in ctx:
        await ctx["deliverer"].stop()
    if "engine" in ctx:
        await ctx["engine"].dispose()


class WorkerSettings:
    functions = [deliver_webhooks]
    queue_name = WEBHOOKS_QUEUE
    on_startup = startup
    on_shutdown = shutdown
    max_jobs = 4
    job_timeout = 60
    max_tries = 1
    poll_delay = 0.1
    idle_poll_delay = 1.0
    keep_result = 0
    redis_settings = RedisSettings.from_dsn(get_settings().redis_url)
