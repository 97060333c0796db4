"""The send path's view of which campaigns are sending: a pause stops SES calls within 2 s."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from mailer.db import short_error
from mailer.sending import repository as repo

log = structlog.get_logger(__name__)


class CampaignStates:
    """Which campaigns are sending, as seen at most ``refresh`` seconds ago (pause → stop).

    A view older than ``stale_after`` (the database did not answer) counts as not
    sending: a pause must stop SES calls within 2 s even when polling stalls. The poll has
    its own connection: taken from the pool, it waited behind the send path's flushes on
    a loaded worker, the view went stale and whole batches were handed back unsent. A
    sender that finds the view stale waits for the next poll (:meth:`wait_fresh`) before
    it gives its message back.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        refresh: float = 0.25,
        stale_after: float = 1.0,
    ):
        self.engine: AsyncEngine = sessionmaker.kw["bind"]
        self.refresh = refresh
        self.stale_after = stale_after
        self._status: dict[int, str] = {}
        self._seen_at: dict[int, float] = {}
        self._watching: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._conn: AsyncConnection | None = None
        self._polled = asyncio.Event()

    def watch(self, campaign_id: int, status: str = "sending") -> None:
        """Start following a campaign whose ``status`` was just read (by the claim)."""
        self._watching[campaign_id] = self._watching.get(campaign_id, 0) + 1
        if campaign_id not in self._status:
            self._status[campaign_id] = status
            self._seen_at[campaign_id] = time.monotonic()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="campaign-states")

    def unwatch(self, campaign_id: int) -> None:
        left = self._watching.get(campaign_id, 0) - 1
        if left <= 0:
            self._watching.pop(campaign_id, None)
            self._status.pop(campaign_id, None)
            self._seen_at.pop(campaign_id, None)
        else:
            self._watching[campaign_id] = left

    def is_fresh(self, campaign_id: int) -> bool:
        return time.monotonic() - self._seen_at.get(campaign_id, 0.0) < self.stale_after

    def is_sending(self, campaign_id: int) -> bool:
        return self.is_fresh(campaign_id) and self._status.get(campaign_id) == "sending"

    async def wait_fresh(self, campaign_id: int, within: float) -> None:
        """Wait (at most ``within`` seconds) until the view of ``campaign_id`` is fresh."""
        deadline = time.monotonic() + within
        while not self.is_fresh(campaign_id) and campaign_id in self._watching:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._polled.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._polled.wait(), left)

    async def poll(self) -> None:
        ids = list(self._watching)
        if not ids:
            return
        asked = time.monotonic()  # the answer is as old as the question
        if self._conn is None:
            conn = await self.engine.connect()
            # no transaction held open between polls
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        try:
            rows = await repo.campaign_statuses(self._conn, ids)
        except Exception:
            conn, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await conn.invalidate()
            raise
        for row in rows:
            self._status[row.id] = row.status
            self._seen_at[row.id] = asked
        self._polled.set()

    async def _run(self) -> None:
        while self._watching:
            try:
                await self.poll()
            except Exception as exc:  # noqa: BLE001 - keep the last view; sends stop if stale
                log.warning("campaign_states_poll_failed", error=short_error(exc))
            await asyncio.sleep(self.refresh)
        await self._release()

    async def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self._release()
