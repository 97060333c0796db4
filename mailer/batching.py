"""Group commit: many concurrent senders, one statement per flush."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class GroupWriter(Generic[T, R]):
    """Collects items from many tasks and writes them together.

    ``await writer.submit(item)`` returns once the flush holding the item is done, with the
    flush's result; a failed flush raises in every submitter. A flush starts when
    ``max_items`` are waiting or ``delay`` seconds after the first one arrived.

    With ``max_in_flight``, a flush also waits while that many are under way, and the items
    that came in meanwhile go together as soon as one ends (they are not held for a timer):
    the batch grows with the load and the flush's own latency, with no wait when idle.
    """

    def __init__(
        self,
        flush: Callable[[list[T]], Awaitable[R]],
        delay: float,
        max_items: int,
        *,
        max_in_flight: int | None = None,
    ) -> None:
        self._flush = flush
        self.delay = delay
        self.max_items = max_items
        self.max_in_flight = max_in_flight
        self._items: list[T] = []
        self._future: asyncio.Future[R] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight = 0

    async def submit(self, item: T) -> R:
        return await asyncio.shield(self.add(item))

    def add(self, item: T) -> asyncio.Future[R]:
        """Queue ``item`` without waiting: the (shared) future of the flush that holds it.

        Await it shielded, or gather it where nothing cancels: cancelling a waiter that
        awaits it directly would cancel the flush result for every item in it.
        """
        loop = asyncio.get_running_loop()
        if self._future is None:
            self._future = loop.create_future()
            if self.max_in_flight is None or self._in_flight < self.max_in_flight:
                self._timer = loop.call_later(self.delay, self._start)
            # else: the flush under way that ends first starts this one
        future = self._future
        self._items.append(item)
        if len(self._items) >= self.max_items:
            self._start()
        return future

    def _start(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        items, future = self._items, self._future
        self._items, self._future = [], None
        if future is None or not items:
            return
        self._in_flight += 1
        task = asyncio.create_task(self._run(items, future))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, items: list[T], future: asyncio.Future[R]) -> None:
        try:
            result = await self._flush(items)
        except BaseException as exc:  # noqa: BLE001 - handed to every submitter
            if not future.done():
                future.set_exception(exc)
            # nobody may be left to retrieve it
            future.exception() if future.done() else None
            return
        finally:
            self._in_flight -= 1
            if self.max_in_flight is not None and self._items and self._timer is None:
                self._start()  # what came in while the flushes were busy
        if not future.done():
            future.set_result(result)

    async def drain(self) -> None:
        """Flush what is waiting and wait for every flush under way."""
        self._start()
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
