"""``mailer worker``: arq workers for the requested queues.

The queues share one process and event loop, except those of ``mailer.queues.OWN_PROCESS``
(imports, transactional, webhooks) when other queues are asked for too: each of those runs
in a child process of its own, supervised and stopped by this one. The children are forked
before any event loop or thread exists, after every worker module is imported, so that they
share those modules with this process instead of importing them again (a fresh interpreter
per child took as much CPU as this process's own start); a child that dies is started again
as ``mailer worker --queues NAME``. Each process names itself ``mailer-<queue>`` (or
``mailer-worker``) for ``ps`` and ``top``. Every queue's Redis connection comes from the
settings at start (the ``WorkerSettings`` classes carry none).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import multiprocessing
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Protocol

import structlog
from arq.connections import RedisSettings
from arq.worker import Worker

from mailer import secrets
from mailer.config import Settings, get_settings
from mailer.ops.worker_metrics import MetricsEndpoint, WorkerPresence
from mailer.queues import OWN_PROCESS, BackoffWorker
from mailer.queues import QUEUES as QUEUE_NAMES

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1
_PR_SET_NAME = 15


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


def _prctl(option: int, value: int | bytes) -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(option, value, 0, 0, 0)


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)  # a graceful stop


def _name_process(queues: list[str]) -> None:
    """``mailer-<queue>`` for a process of one queue, else ``mailer-worker`` (15 bytes at
    most: what the kernel keeps of a name)."""
    name = f"mailer-{queues[0]}" if len(queues) == 1 else "mailer-worker"
    _prctl(_PR_SET_NAME, name.encode()[:15])


class _Child(Protocol):
    def poll(self) -> int | None: ...
    def wait(self, timeout: float | None = None) -> int: ...
    def send_signal(self, sig: int) -> None: ...
    def kill(self) -> None: ...


class _Forked:
    """A forked ``multiprocessing.Process`` behind the few ``Popen`` methods used here."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process
        # the supervisor and a stop wait at once, from two threads: one of them reaps the
        # child (multiprocessing's join is not safe to call from two threads at a time)
        self._reaping = threading.Lock()

    def poll(self) -> int | None:
        with self._reaping:  # reading exitcode may reap the child too
            return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        if not multiprocessing.connection.wait([self.process.sentinel], timeout):
            raise subprocess.TimeoutExpired("forked worker", timeout or 0.0)
        with self._reaping:  # it has ended: the join only reaps it
            self.process.join()
        assert self.process.exitcode is not None  # noqa: S101 - joined
        return self.process.exitcode

    def send_signal(self, sig: int) -> None:
        if self.process.pid is not None and self.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)

    def kill(self) -> None:
        self.process.kill()


def _work_apart(queue: str, parent: int) -> None:
    """A forked child's whole life: its one queue, until it is stopped or its parent dies."""
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the line above
        return
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run([queue]))


class ChildWorker:
    """A queue worked in a child process: forked at start (:meth:`fork`), started again
    as ``mailer worker --queues NAME`` if it dies."""

    def __init__(self, queue: str) -> None:
        self.queue = queue
        self.process: _Child | None = None
        self._stopping = False

    def fork(self) -> None:
        """Fork the child now, sharing this process's imported modules. Only safe while no
        thread but the main one runs; otherwise :meth:`supervise` starts a fresh process."""
        if threading.active_count() > 1:
            return
        process = multiprocessing.get_context("fork").Process(
            target=_work_apart, args=(self.queue, os.getpid()), daemon=True
        )
        process.start()
        self.process = _Forked(process)

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603 - our own console script
            [sys.executable, "-m", "mailer.cli", "worker", "--queues", self.queue],
            preexec_fn=_die_with_parent,
        )

    async def supervise(self) -> None:
        while not self._stopping:
            if self.process is None:
                self.process = self._spawn()
            code = await asyncio.to_thread(self.process.wait)
            if self._stopping:
                return
            log.warning("child_worker_exited", queue=self.queue, code=code)
            self.process = None
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


def start(queues: list[str] | None = None, metrics: MetricsEndpoint | None = None) -> None:
    """``mailer worker``: fork the children, then work on the rest of ``queues`` here until
    stopped. Raises :class:`mailer.secrets.WeakSecret` before anything starts when the
    secret key must not sign (a worker signs unsubscribe links)."""
    secrets.require(get_settings())
    names = list(dict.fromkeys(queues or QUEUE_NAMES))
    apart = [q for q in names if q in OWN_PROCESS] if len(names) > 1 else []
    children = [ChildWorker(q) for q in apart]
    if children:
        # every module any queue needs, imported once here, kept out of the collector and
        # shared with the children (copy-on-write) rather than imported by each again
        for queue in names:
            worker_settings(queue)
        from workers import context  # noqa: F401 - imported for the children

        gc.collect()
        gc.freeze()
        for child in children:
            child.fork()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run([q for q in names if q not in apart], children, metrics))


async def run(
    here: list[str],
    children: list[ChildWorker] | None = None,
    metrics: MetricsEndpoint | None = None,
) -> None:
    """Work on the queues ``here`` in this process and supervise the ``children`` (the
    secret key was checked by :func:`start`, before the children were forked)."""
    settings = get_settings()
    children = children or []
    _name_process(here)
    # its heartbeat for the queues worked on here (children beat for theirs), its /metrics
    presence = WorkerPresence(settings, here, metrics)
    await presence.start()
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
