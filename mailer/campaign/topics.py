"""A campaign's topic: checked when named, and narrowing its audience to the subscribers."""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.campaign import repository
from mailer.errors import Invalid
from mailer.models.subscription import subscribed_to


async def check(session: AsyncSession, topic_id: int | None) -> int | None:
    """The topic a body names, if it exists; else a 422 naming ``topic_id``."""
    if topic_id is not None and not await repository.topic_exists(session, topic_id):
        raise Invalid.at(["body", "topic_id"], f"no topic {topic_id}")
    return topic_id


def narrow(where: ColumnElement[bool], topic_id: int | None) -> ColumnElement[bool]:
    """The segment's contacts, and with a topic only those subscribed to it."""
    return where if topic_id is None else and_(where, subscribed_to(topic_id))
