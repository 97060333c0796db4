"""Group commit of single ``POST /v1/messages``: concurrent requests share a transaction.

One request alone costs a transaction of its own (BEGIN, the INSERT of its message and key,
COMMIT) and a Redis enqueue; at a thousand a second those round trips are the work.
Requests that arrive while a group is being committed wait for the next group, which takes
them all (up to ``group_size``) through :func:`mailer.message.service.accept` in one
transaction and one enqueue, exactly as ``POST /v1/messages/batch`` takes its items. A
lone request is a group of one and waits for nobody.

Each request is answered only after the commit of its group and the group's after-commit
work (the enqueue). Should the group's transaction fail, each of its requests is tried
again in a transaction of its own, so one request's failure stays its own.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from arq import ArqRedis
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.config import Settings
from mailer.db import after_commit, transaction
from mailer.errors import Conflict, MailerError, Unavailable
from mailer.message import service
from mailer.message.schemas import MessageAccepted
from mailer.ses.senders import SenderCheck

Answer = MessageAccepted | MailerError


@dataclass(slots=True)
class _Waiting:
    api_key_id: int
    request: service.Request
    answer: asyncio.Future[Answer] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class Intake:
    """Accepts single messages in groups; ``await intake.accept(...)`` answers one."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        redis: ArqRedis,
        *,
        group_size: int = 200,
        concurrency: int = 2,
        senders: SenderCheck | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.redis = redis
        self.senders = senders
        self.group_size = group_size
        self.concurrency = concurrency
        self._waiting: list[_Waiting] = []
        self._committers: set[asyncio.Task[None]] = set()

    async def accept(self, api_key_id: int, request: service.Request) -> Answer:
        """The message accepted (or known by its key), or its 409/422, once committed."""
        if self.senders is not None and self.senders.enabled:
            # before it joins a group: a first look-up of a domain holds up no other request
            refused = await service.sender_refusal(self.senders, self.settings, request)
            if refused is not None:
                return refused
        waiting = _Waiting(api_key_id, request)
        self._waiting.append(waiting)
        if len(self._committers) < self.concurrency:
            task = asyncio.create_task(self._commit_groups())
            self._committers.add(task)
            task.add_done_callback(self._committers.discard)
        # shielded: a request that goes away does not cancel the group it is part of
        return await asyncio.shield(waiting.answer)

    async def close(self) -> None:
        """Wait for the groups being committed (the app's shutdown)."""
        while self._committers:
            await asyncio.gather(*self._committers, return_exceptions=True)

    async def _commit_groups(self) -> None:
        while self._waiting:
            group = self._waiting[: self.group_size]
            del self._waiting[: self.group_size]
            committed: list[bool] = []
            try:
                await self._commit(group, committed)
            except Exception as exc:
                if committed:
                    # saved, but its enqueue failed: answered as a lone request's would be
                    # (a 500; the sweep of lost messages enqueues them again)
                    for waiting in group:
                        if not waiting.answer.done():
                            waiting.answer.set_exception(exc)
                    continue
                # nothing was saved: each request alone, so that a failure stays its own
                for waiting in group:
                    await self._commit_alone(waiting)

    async def _commit(self, group: list[_Waiting], committed: list[bool]) -> None:
        by_key: dict[int, list[_Waiting]] = {}
        for waiting in group:
            by_key.setdefault(waiting.api_key_id, []).append(waiting)
        answered: list[tuple[_Waiting, Answer]] = []

        async def mark_committed() -> None:
            committed.append(True)

        async with transaction(self.sessionmaker) as session:
            after_commit(session, mark_committed)  # first in the buffer: runs first
            for api_key_id, items in by_key.items():
                answers = await service.accept(
                    session, self.settings, self.redis, api_key_id, [w.request for w in items]
                )
                answered += zip(items, answers, strict=True)
        for waiting, answer in answered:
            if not waiting.answer.done():
                waiting.answer.set_result(answer)

    async def _commit_alone(self, waiting: _Waiting) -> None:
        """What a request in a transaction of its own would answer (``get_session``)."""
        committing = False
        try:
            async with transaction(self.sessionmaker) as session:
                [answer] = await service.accept(
                    session, self.settings, self.redis, waiting.api_key_id, [waiting.request]
                )
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
