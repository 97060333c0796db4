"""Engine, session factory and the transaction wrappers for requests and jobs.

The request or the job owns the transaction; services never commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from mailer.config import Settings

log = structlog.get_logger(__name__)

T = TypeVar("T")


# Per connection. No JIT: our statements are short, and a plan whose estimated cost passes
# jit_above_cost (a LIMIT over a filtered index scan is estimated as the whole scan) was
# compiled on every execution: the outgoing webhooks' claim took 1 ms to run and 490 ms
# to JIT-compile once its table had grown (bench/webhooks_out.py, a dead endpoint).
SERVER_SETTINGS = {"jit": "off"}


def create_engine(settings: Settings, *, pool_size: int = 10, pre_ping: bool = True) -> AsyncEngine:
    """``pre_ping=False`` saves a round trip per checkout where every use already drops a
    broken connection and tries again (the workers' send path)."""
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        # asyncpg's statement cache is per connection; keep it (hot paths are prepared)
        connect_args={"server_settings": SERVER_SETTINGS},
    )


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


AfterCommit = Callable[[], Awaitable[object]]


def after_commit(session: AsyncSession, action: AfterCommit) -> None:
    """Run ``action`` (enqueuing a job) once the session's transaction has committed.

    The buffer lives on the session; it is flushed after the commit by :func:`transaction`
    and dropped on rollback, so no job is ever enqueued for a row that was rolled back.
    """
    session.info.setdefault("after_commit", []).append(action)


async def run_after_commit(session: AsyncSession) -> None:
    """Flush the session's after-commit buffer (called once its transaction committed)."""
    for action in session.info.pop("after_commit", []):
        await action()


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work for requests, jobs and CLI commands alike: commit on success,
    roll back on any exception; after the commit, the after-commit buffer runs."""
    async with sessionmaker() as session:
        try:
            async with session.begin():
                yield session
        except BaseException:
            session.info.pop("after_commit", None)
            raise
        await run_after_commit(session)


class HeldConnections:
    """A few of the engine's connections kept checked out for one hot path that sends
    single statements straight to the driver (asyncpg), each its own transaction:
    PostgreSQL commits a statement run outside BEGIN before it answers, so once the call
    returns its rows are durable. The session wrapper costs about a millisecond of CPU a
    transaction (session, BEGIN, COMMIT, the checkout's ping); a held connection, none.

    A connection whose statement failed, or was cancelled, is dropped (its state is
    unknown), and so are the idle ones (after a database restart they are all stale).
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._idle: list[tuple[AsyncConnection, Any]] = []

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[Any]:
        """An asyncpg connection of the engine's pool, outside any transaction."""
        while self._idle and self._idle[-1][1].is_closed():
            await self._drop([self._idle.pop()])  # the server ended it while it was idle
        held = self._idle.pop() if self._idle else await self._open()
        try:
            yield held[1]
        except BaseException:
            await self._drop([held, *self._idle])
            self._idle.clear()
            raise
        self._idle.append(held)

    async def _open(self) -> tuple[AsyncConnection, Any]:
        conn = await self.engine.connect()
        try:
            driver = (await conn.get_raw_connection()).driver_connection
        except BaseException:
            await conn.close()
            raise
        return conn, driver

    async def _drop(self, held: list[tuple[AsyncConnection, Any]]) -> None:
        for conn, _ in held:
            try:
                await conn.invalidate()
                await conn.close()
            except Exception:  # noqa: BLE001, S110 - it is being thrown away
                pass

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            await conn.close()


async def retry_db(write: Callable[[], Awaitable[T]], deadline: float) -> T:
    """Run a short transaction, again after a database error (a deadlock, a restart, a
    failover) until ``deadline`` seconds have passed; then the error is raised.

    The send path gives its writes half a lease: a record lost for good means mail SES
    accepted is sent again once the lease lapses, so riding out a failover is worth it.
    """
    give_up = time.monotonic() + deadline
    attempt = 0
    while True:
        try:
            return await write()
        except (DBAPIError, OSError) as exc:
            attempt += 1
            pause = min(0.05 * 2 ** min(attempt, 10), 1.0) * (0.5 + random.random())
            if time.monotonic() + pause > give_up:
                raise
            log.warning("db_write_retry", attempt=attempt, error=short_error(exc))
            await asyncio.sleep(pause)


def short_error(exc: BaseException) -> str:
    """An error for a log line: a traceback (rendered with its locals) of a database that
    is away would hold the event loop, and the SES calls in flight, for seconds."""
    return f"{type(exc).__name__}: {exc}"[:300]


async def invalidating(conn: AsyncConnection | AsyncSession, run: Callable[[], Awaitable[T]]) -> T:
    """``run()``; after a failure the connection is dropped, not pooled again: after a
    restart its protocol state may be broken ("another operation is in progress"), and
    a retry must not get it back."""
    try:
        return await run()
    except (DBAPIError, OSError):
        with contextlib.suppress(Exception):
            await conn.invalidate()
        raise
