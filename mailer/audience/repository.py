from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import Contact, Segment, Suppression
from mailer.models.suppression import scopes_for


def eligible(mail_class: str = "marketing") -> ColumnElement[bool]:
    """Contacts that may be mailed: subscribed (marketing) and not suppressed for the class."""
    scopes = scopes_for(mail_class)
    suppressed = (
        select(Suppression.email)
        .where(Suppression.email == Contact.email, Suppression.scope.in_(scopes))
        .exists()
    )
    clause = ~suppressed
    if mail_class == "marketing":
        clause = and_(Contact.status == "subscribed", clause)
    return clause


async def insert(session: AsyncSession, name: str, tree: dict[str, Any]) -> Segment:
    segment = Segment(name=name, filter=tree)
    session.add(segment)
    await session.flush()
    return segment


async def get(session: AsyncSession, segment_id: int) -> Segment | None:
    return await session.get(Segment, segment_id)


async def count(session: AsyncSession, where: ColumnElement[bool]) -> tuple[int, int]:
    """(matching, eligible) in one scan."""
    row = (
        await session.execute(
            select(func.count(), func.count().filter(eligible())).select_from(Contact).where(where)
        )
    ).one()
    return int(row[0]), int(row[1])


async def sample(session: AsyncSession, where: ColumnElement[bool], limit: int) -> list[str]:
    rows = await session.execute(
        select(Contact.email).where(where, eligible()).order_by(Contact.id).limit(limit)
    )
    return list(rows.scalars())
