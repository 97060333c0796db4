"""Engine, session factory and the transaction wrappers for requests and jobs.

The request or the job owns the transaction; services never commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from mailer.config import Settings


def create_engine(settings: Settings, *, pool_size: int = 10, pre_ping: bool = True) -> AsyncEngine:
    """``pre_ping=False`` saves a round trip per checkout where every use already drops a
    broken connection and tries again (the workers' send path)."""
    return create_async_engine(
        settings.database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=pre_ping,
        # asyncpg's statement cache is per connection; keep it (hot paths are prepared)
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
