"""Group commit: concurrent requests share a transaction.

One request alone costs a transaction of its own (BEGIN, its statements, COMMIT) and its
after-commit work (a Redis enqueue); at hundreds or thousands a second those round trips
are the work. Requests that arrive while a group is being committed wait for the next
group, which takes them all (up to ``group_size``) through one call of ``work`` in one
transaction. A lone request is a group of one and waits for nobody.

Each request is answered only after the commit of its group and the group's after-commit
work. Should the group's transaction fail, each of its requests is tried again in a
transaction of its own, so one request's failure stays its own. Users:
``POST /v1/messages`` (``mailer.message.intake``) and ``POST /subscribe/{form_id}``
(``mailer.subscription.signup``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.db import after_commit, transaction
from mailer.errors import Conflict, MailerError, Unavailable

Item = TypeVar("Item")
Answer = TypeVar("Answer")


@dataclass(slots=True)
class _Waiting(Generic[Item, Answer]):
    item: Item
    answer: asyncio.Future[Answer | MailerError] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommit(Generic[Item, Answer]):
    """``await group.submit(item)``: the item's answer (or its 4xx), once committed.

    ``work(session, items)`` does a group's statements in the session's transaction and
    returns one answer per item, in order: its result or the ``MailerError`` it is refused
    with (a refused item must have changed nothing)."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        work: Callable[[AsyncSession, list[Item]], Awaitable[list[Answer | MailerError]]],
        *,
        group_size: int,
        concurrency: int,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.work = work
        self.group_size = group_size
        self.concurrency = concurrency
        self._waiting: list[_Waiting[Item, Answer]] = []
        self._committers: set[asyncio.Task[None]] = set()

    async def submit(self, item: Item) -> Answer | MailerError:
        waiting: _Waiting[Item, Answer] = _Waiting(item)
        self._waiting.append(waiting)
        if len(self._committers) < self.concurrency:
            self._committers.add(asyncio.create_task(self._commit_groups()))
        # shielded: a request that goes away does not cancel the group it is part of
        return await asyncio.shield(waiting.answer)

    async def close(self) -> None:
        """Wait for the groups being committed (the app's shutdown)."""
        while self._committers:
            await asyncio.gather(*self._committers, return_exceptions=True)

    async def _commit_groups(self) -> None:
        try:
            await self._commit_waiting()
        finally:
            # at once, not in a done callback: between a committer's last look at the
            # queue and a callback run on a later turn of the loop, a request could be
            # queued, see every committer still counted and start none (and wait forever)
            task = asyncio.current_task()
            if task is not None:
                self._committers.discard(task)

    async def _commit_waiting(self) -> None:
        while self._waiting:
            group = self._waiting[: self.group_size]
            del self._waiting[: self.group_size]
            committed: list[bool] = []
            try:
                await self._commit(group, committed)
            except Exception as exc:
                if committed:
                    # saved, but its after-commit work failed: answered as a lone
                    # request's would be (a 500; each user has a sweep that repairs it)
                    for waiting in group:
                        if not waiting.answer.done():
                            waiting.answer.set_exception(exc)
                    continue
                # nothing was saved: each request alone, so that a failure stays its own
                for waiting in group:
                    await self._commit_alone(waiting)

    async def _commit(self, group: list[_Waiting[Item, Answer]], committed: list[bool]) -> None:
        async def mark_committed() -> None:
            committed.append(True)

        async with transaction(self.sessionmaker) as session:
            after_commit(session, mark_committed)  # first in the buffer: runs first
            answers = await self.work(session, [w.item for w in group])
        for waiting, answer in zip(group, answers, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(answer)

    async def _commit_alone(self, waiting: _Waiting[Item, Answer]) -> None:
        """What a request in a transaction of its own would answer (``get_session``)."""
        committing = False
        try:
            async with transaction(self.sessionmaker) as session:
                [answer] = await self.work(session, [waiting.item])
                committing = True
        except DBAPIError as exc:
            if not committing:
                waiting.answer.set_exception(exc)
            elif isinstance(exc, IntegrityError):
                waiting.answer.set_result(
                    Conflict("the change conflicts with data saved meanwhile; not saved")
                )
            else:
                waiting.answer.set_result(
                    Unavailable("the change could not be saved; nothing was saved, retry")
                )
            return
        except Exception as exc:  # noqa: BLE001 - the request's own error, answered as a 500
            waiting.answer.set_exception(exc)
            return
        waiting.answer.set_result(answer)
