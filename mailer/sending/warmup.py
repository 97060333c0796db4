"""A worker's database connections opened and its hot statements prepared before the first
message (with no ids: nothing is claimed or written)."""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mailer.sending import outcomes
from mailer.sending import repository as repo


async def prepare_connections(engine: AsyncEngine, connections: int) -> None:
    """Open ``connections`` of the pool and prepare the send path's statements on each, so
    that the first messages after a start wait neither for a connection to be set up nor
    for their statements to be prepared. Errors are left to the first send."""

    async def prepare(conn: AsyncConnection) -> None:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await repo.claim_messages(conn, [], "warm-up", 1.0)
        await repo.mark_sending(conn, [], "warm-up")
        await outcomes.record(conn, [], "warm-up")

    opened = await asyncio.gather(
        *(engine.connect() for _ in range(connections)), return_exceptions=True
    )
    conns = [c for c in opened if isinstance(c, AsyncConnection)]
    try:
        await asyncio.gather(*(prepare(c) for c in conns), return_exceptions=True)
    finally:
        for conn in conns:
            with contextlib.suppress(Exception):
                await conn.close()  # back to the pool, open and prepared
