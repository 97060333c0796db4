"""Group commit of single ``POST /v1/messages`` (``mailer.group_commit``): concurrent
requests share a transaction, each group taken through :func:`mailer.message.service.accept`
exactly as ``POST /v1/messages/batch`` takes its items, once per API key in the group."""

from __future__ import annotations

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.config import Settings
from mailer.errors import MailerError
from mailer.group_commit import GroupCommit
from mailer.message import service
from mailer.message.schemas import MessageAccepted
from mailer.ses.senders import SenderCheck

Answer = MessageAccepted | MailerError


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
        self.settings = settings
        self.redis = redis
        self.senders = senders
        self._groups: GroupCommit[tuple[int, service.Request], MessageAccepted] = GroupCommit(
            sessionmaker, self._accept, group_size=group_size, concurrency=concurrency
        )

    async def accept(self, api_key_id: int, request: service.Request) -> Answer:
        """The message accepted (or known by its key), or its 409/422, once committed."""
        if self.senders is not None and self.senders.enabled:
            # before it joins a group: a first look-up of a domain holds up no other request
            refused = await service.sender_refusal(self.senders, self.settings, request)
            if refused is not None:
                return refused
        return await self._groups.submit((api_key_id, request))

    async def close(self) -> None:
        """Wait for the groups being committed (the app's shutdown)."""
        await self._groups.close()

    async def _accept(
        self, session: AsyncSession, items: list[tuple[int, service.Request]]
    ) -> list[Answer]:
        by_key: dict[int, list[int]] = {}
        for i, (api_key_id, _) in enumerate(items):
            by_key.setdefault(api_key_id, []).append(i)
        answers: list[Answer | None] = [None] * len(items)
        for api_key_id, indexes in by_key.items():
            accepted = await service.accept(
                session, self.settings, self.redis, api_key_id, [items[i][1] for i in indexes]
            )
            for i, answer in zip(indexes, accepted, strict=True):
                answers[i] = answer
        return [a for a in answers if a is not None]
