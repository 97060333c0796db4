"""``mailer worker``: arq workers for the requested queues in one process."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import time
from typing import Any

import structlog
from arq.connections import RedisSettings
from arq.worker import Worker

from mailer.config import Settings, get_settings

log = structlog.get_logger(__name__)

QUEUES = ("send", "transactional", "default", "events")


def worker_settings(queue: str) -> dict[str, Any]:
    if queue == "send":
        from workers.send import WorkerSettings
    elif queue == "transactional":
        from workers.transactional import WorkerSettings  # type: ignore[assignment]
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
    running: asyncio.Future[Any] = asyncio.ensure_future(
        asyncio.gather(*(w.async_run() for w in workers)))
    stop = asyncio.Event()
    draining: asyncio.Future[None] | None = None

    def on_signal() -> None:
        # a second signal: stop now, leases cover the rest
        if stop.is_set() and draining is not None:
            draining.cancel()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set() and not running.done():
            draining = asyncio.ensure_future(drain(workers, grace_seconds(settings)))
            with contextlib.suppress(asyncio.CancelledError):
                await draining
    finally:
        stopping.cancel()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        for w in workers:
            await w.close()


def grace_seconds(settings: Settings) -> float:
    """How long a graceful stop waits for running jobs: an SES call in flight (its timeout)
    and the recording of its outcome (half a lease of retries)."""
    return settings.ses_timeout_seconds + settings.lease_seconds / 2 + 1.0


async def drain(workers: list[Worker], grace: float) -> None:
    """Graceful stop: take no new job, claim no new message, let the running jobs finish
    (their SES calls in flight end and are recorded, the rest of what they hold goes back
    to the queue for other workers), for at most ``grace`` seconds."""
    for w in workers:
        w.allow_pick_jobs = False
        sender = w.ctx.get("sender")
        if sender is not None:
            sender.stop_claiming()
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        running = [t for w in workers for t in w.tasks.values() if not t.done()]
        if not running:
            return
        await asyncio.wait(running, timeout=min(0.1, max(deadline - time.monotonic(), 0)))
    log.warning("graceful_stop_timed_out", grace=grace)
