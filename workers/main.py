"""``mailer worker``: arq workers for the requested queues.

The queues share one process and event loop, except those of ``mailer.queues.OWN_PROCESS``
(imports, transactional) when other queues are asked for too: each of those runs as a child
``mailer worker --queues NAME``, started, restarted and stopped by this one. Every queue's
Redis connection comes from the settings at start (the ``WorkerSettings`` classes carry none).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import signal
import subprocess
import sys
import time
from typing import Any

import structlog
from arq.connections import RedisSettings
from arq.worker import Worker

from mailer import secrets
from mailer.config import Settings, get_settings
from mailer.ops.worker_metrics import MetricsEndpoint, WorkerPresence
from mailer.queues import OWN_PROCESS, BackoffWorker
from mailer.queues import QUEUES as QUEUE_NAMES

log = structlog.get_logger(__name__)


def worker_settings(queue: str) -> dict[str, Any]:
    if queue == "send":
        from workers.send import WorkerSettings
    elif queue == "transactional":
        from workers.transactional import WorkerSettings  # type: ignore[assignment]
    elif queue == "imports":
        from workers.imports import WorkerSettings  # type: ignore[assignment]
    elif queue == "events":
        from workers.events import WorkerSettings  # type: ignore[assignment]
    elif queue == "webhooks":
        from workers.webhooks import WorkerSettings  # type: ignore[assignment]
    else:
        raise ValueError(f"unknown queue {queue!r}; known: {', '.join(QUEUE_NAMES)}")
    names = [n for n in dir(WorkerSettings) if not n.startswith("_")]
    return {n: getattr(WorkerSettings, n) for n in names}


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG: a graceful stop


class ChildWorker:
    """``mailer worker --queues NAME`` as a child process, restarted if it dies."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.process: subprocess.Popen[bytes] | None = None
        self._stopping = False

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - our own console script
            [sys.executable, "-m", "mailer.cli", "worker", "--queues", self.queue],
            preexec_fn=_die_with_parent,
        )

    async def supervise(self) -> None:
        while not self._stopping:
            self.process = self._spawn()
            code = await asyncio.to_thread(self.process.wait)
            if self._stopping:
                return
            log.warning("child_worker_exited", queue=self.queue, code=code)
            await asyncio.sleep(1.0)

    async def stop(self, grace: float) -> None:
        self._stopping = True
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, grace + 5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)


async def run(queues: list[str] | None = None, metrics: MetricsEndpoint | None = None) -> None:
    """Work on ``queues``; raises :class:`mailer.secrets.WeakSecret` before anything starts
    when the secret key must not sign (a worker signs unsubscribe links)."""
    settings = get_settings()
    secrets.require(settings)
    names = list(dict.fromkeys(queues or QUEUE_NAMES))
    apart = [q for q in names if q in OWN_PROCESS] if len(names) > 1 else []
    children = [ChildWorker(q) for q in apart]
    # its heartbeat for the queues worked on here (children beat for theirs), its /metrics
    presence = WorkerPresence(settings, [q for q in names if q not in apart], metrics)
    await presence.start()
    here = [q for q in names if q not in apart]
    # imported here, not at the top: ``mailer worker`` imports this module before it sets
    # up the metrics directory, and the context imports the metrics
    from workers import context

    context.working_on(here)
    workers: list[Worker] = []
    for queue in here:
        options = worker_settings(queue)
        options["redis_settings"] = RedisSettings.from_dsn(settings.redis_url)
        options["handle_signals"] = False
        workers.append(BackoffWorker(**options))
    # the modules and settings loaded so far live as long as the process: keep them out of
    # every collection, and collect the young generation less often (a send makes many
    # short-lived objects; the default threshold of 700 runs a collection every few sends)
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    loop = asyncio.get_running_loop()
    running: asyncio.Future[Any] = asyncio.ensure_future(
        asyncio.gather(*(w.async_run() for w in workers))
    )
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
    supervised = [asyncio.ensure_future(child.supervise()) for child in children]
    try:
        await asyncio.wait([running, stopping], return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set() and not running.done():
            grace = grace_seconds(settings)
            draining = asyncio.ensure_future(drain_workers(workers, grace))
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(draining, *(child.stop(grace) for child in children))
    finally:
        await asyncio.gather(*(child.stop(grace_seconds(settings)) for child in children))
        for task in supervised:
            task.cancel()
        stopping.cancel()
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        for w in workers:
            await w.close()
        await presence.close()


def grace_seconds(settings: Settings) -> float:
    """How long a graceful stop waits for running jobs: an SES call in flight (its timeout)
    and the recording of its outcome (half a lease of retries)."""
    return settings.ses_timeout_seconds + settings.lease_seconds / 2 + 1.0


async def drain_workers(workers: list[Worker], grace: float) -> None:
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
