"""Segment SQL: who is eligible for a class, counts and samples of a segment."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, func, outerjoin, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

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


async def get(session: AsyncSession, segment_id: int, lock: bool = False) -> Segment | None:
    return await session.get(Segment, segment_id, with_for_update=lock)


async def page(session: AsyncSession, after: int, limit: int) -> list[Segment]:
    query = select(Segment).where(Segment.id > after).order_by(Segment.id).limit(limit)
    return list((await session.execute(query)).scalars())


async def custom_plans(session: AsyncSession) -> None:
    """Plan this transaction's statements for their parameters. asyncpg prepares every
    statement; after five runs PostgreSQL may switch to a generic plan, which for a segment
    filter cannot know how selective a tag or a value is (a 2-3x slower count)."""
    await session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


async def count(session: AsyncSession, where: ColumnElement[bool]) -> tuple[int, int]:
    """(matching, eligible) in one scan.

    The suppression list is joined (a hash join: one pass over it), not asked per row: a
    correlated NOT EXISTS under the FILTER ran once per matching contact, 3x slower on a
    million contacts. suppressions.email is its key, so the join never repeats a contact.
    """
    await custom_plans(session)
    suppressed = aliased(Suppression)
    joined = outerjoin(
        Contact,
        suppressed,
        and_(suppressed.email == Contact.email, suppressed.scope.in_(scopes_for("marketing"))),
    )
    mailable = and_(Contact.status == "subscribed", suppressed.email.is_(None))
    row = (
        await session.execute(
            select(func.count(), func.count().filter(mailable)).select_from(joined).where(where)
        )
    ).one()
    return int(row[0]), int(row[1])


async def sample(session: AsyncSession, where: ColumnElement[bool], limit: int) -> list[str]:
    rows = await session.execute(
        select(Contact.email).where(where, eligible()).order_by(Contact.id).limit(limit)
    )
    return list(rows.scalars())


async def delete(session: AsyncSession, segment_id: int) -> list[int]:
    """Delete a segment no campaign refers to; otherwise nothing, and the ids of the
    campaigns that do (a campaign keeps its segment for its history)."""
    users = [
        int(r[0])
        for r in await session.execute(
            text("SELECT id FROM campaigns WHERE segment_id = :id ORDER BY id"), {"id": segment_id}
        )
    ]
    if not users:
        await session.execute(text("DELETE FROM segments WHERE id = :id"), {"id": segment_id})
    return users
