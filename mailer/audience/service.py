"""Segments: saved filters, counted and previewed against the contacts."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mailer.audience import repository
from mailer.audience.filters import compile_filter
from mailer.audience.schemas import CountOut, PreviewOut, SegmentOut, SegmentPage
from mailer.errors import Conflict, Invalid, NotFound
from mailer.models import Segment


def _out(segment: Segment) -> SegmentOut:
    return SegmentOut(
        id=segment.id, name=segment.name, filter=segment.filter, created_at=segment.created_at
    )


async def create(session: AsyncSession, name: str, tree: dict[str, Any]) -> SegmentOut:
    compile_filter(tree)  # a bad filter is a 422 before anything is stored
    return _out(await repository.insert(session, name, tree))


async def get(session: AsyncSession, segment_id: int, lock: bool = False) -> Segment:
    segment = await repository.get(session, segment_id, lock)
    if segment is None:
        raise NotFound(f"no segment {segment_id}")
    return segment


async def read(session: AsyncSession, segment_id: int) -> SegmentOut:
    return _out(await get(session, segment_id))


async def replace(
    session: AsyncSession, segment_id: int, name: str, tree: dict[str, Any]
) -> SegmentOut:
    """New name and filter. Campaigns whose audience is fixed keep it (their messages are
    rows already); a campaign not launched yet takes the new filter at launch."""
    compile_filter(tree)
    segment = await get(session, segment_id, lock=True)
    segment.name, segment.filter = name, tree
    await session.flush()
    return _out(segment)


async def delete(session: AsyncSession, segment_id: int) -> None:
    """Delete a segment no campaign uses (409 naming the campaigns otherwise)."""
    await get(session, segment_id, lock=True)
    users = await repository.delete(session, segment_id)
    if users:
        raise Conflict(
            f"segment {segment_id} is used by campaigns {', '.join(map(str, users))}:"
            " a campaign keeps its segment",
            [{"campaign_ids": users}],
        )


def parse_cursor(cursor: str | None) -> int:
    """The id a page starts after; cursors are the last id of the previous page."""
    if not cursor:
        return 0
    if not cursor.isdigit() or len(cursor) > 18:
        raise Invalid.at(["query", "cursor"], "not a cursor from a previous page")
    return int(cursor)


async def page(session: AsyncSession, cursor: str | None, limit: int) -> SegmentPage:
    rows = await repository.page(session, parse_cursor(cursor), limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return SegmentPage(
        items=[_out(s) for s in rows], next_cursor=str(rows[-1].id) if more and rows else None
    )


async def count(session: AsyncSession, segment_id: int) -> CountOut:
    segment = await get(session, segment_id)
    matching, eligible = await repository.count(session, compile_filter(segment.filter))
    return CountOut(matching=matching, eligible=eligible)


async def preview(session: AsyncSession, tree: dict[str, Any], sample_size: int = 10) -> PreviewOut:
    where = compile_filter(tree)
    matching, eligible = await repository.count(session, where)
    # the sample walks contacts in id order until it has enough: with none to find that
    # would be every contact, by index
    sample = await repository.sample(session, where, sample_size) if eligible else []
    return PreviewOut(matching=matching, eligible=eligible, sample=sample)
