"""``mailer worker``: arq workers for the requested queues in one process."""

from __future__ import annotations

import asyncio
import gc
import signal
from typing import Any

from arq.connections import RedisSettings
from arq.worker import Worker

from mailer.config import get_settings

QUEUES = ("send", "default", "events")


def worker_settings(queue: str) -> dict[str, Any]:
    if queue == "send":
        from workers.send import WorkerSettings
    elif queue == "default":
        from workers.default import WorkerSettings  # type: ignore[assignment]
    elif queue == "events":
        from workers.events import WorkerSettings  # type: ignore[assignment]
    else:
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(QUEUES)}")
    names = [n for n in dir(WorkerSettings) if not n.startswith("_")]
    return {n: getattr(WorkerSettings, n) for n in names}


async def run(queues: list[str] | None = None) -> None:
    settings = get_settings()
    workers = []
    for queue in queues or list(QUEUES):
        options = worker_settings(queue)
        options["redis_settings"] = RedisSettings.from_dsn(settings.redis_url)
        options["handle_signals"] = False
        workers.append(Worker(**options))
    # the modules and settings loaded so far live as long as the process: keep them out of
    # every collection, and collect the young generation less often (a send makes many
    # short-lived objects; the default threshold of 700 runs a collection every few sends)
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    loop = asyncio.get_running_loop()
    running = asyncio.ensure_future(asyncio.gather(*(w.async_run() for w in workers)))
    # SIGTERM/SIGINT: stop taking jobs and shut down cleanly (leases cover the rest)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, running.cancel)
    try:
        await running
    except asyncio.CancelledError:
        pass
    finally:
        for w in workers:
            await w.close()
