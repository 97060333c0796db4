"""Segments: saved filters, counted and previewed against the contacts."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mailer.audience import repository
from mailer.audience.filters import compile_filter
from mailer.audience.schemas import CountOut, PreviewOut, SegmentOut, SegmentPage
from mailer.errors import Conflict, NotFound
from mailer.models import Segment
from mailer.pagination import Page


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


async def page(session: AsyncSession, page: Page[int]) -> SegmentPage:
    rows, next_cursor = page.cut(
        await repository.page(session, page.last or 0, page.fetch), key=lambda s: s.id
    )
    return SegmentPage(items=[_out(s) for s in rows], next_cursor=next_cursor)


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
