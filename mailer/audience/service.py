"""Segments: saved filters, counted and previewed against the contacts."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from mailer.audience import repository
from mailer.audience.filters import compile_filter
from mailer.audience.schemas import CountOut, PreviewOut, SegmentOut
from mailer.errors import NotFound
from mailer.models import Segment


def _out(segment: Segment) -> SegmentOut:
    return SegmentOut(id=segment.id, name=segment.name, filter=segment.filter,
                      created_at=segment.created_at)


async def create(session: AsyncSession, name: str, tree: dict[str, Any]) -> SegmentOut:
    compile_filter(tree)  # a bad filter is a 422 before anything is stored
    return _out(await repository.insert(session, name, tree))


async def get(session: AsyncSession, segment_id: int) -> Segment:
    segment = await repository.get(session, segment_id)
    if segment is None:
        raise NotFound(f"no segment {segment_id}")
    return segment


async def count(session: AsyncSession, segment_id: int) -> CountOut:
    segment = await get(session, segment_id)
    matching, eligible = await repository.count(session, compile_filter(segment.filter))
    return CountOut(matching=matching, eligible=eligible)


async def preview(session: AsyncSession, tree: dict[str, Any], sample_size: int = 10) -> PreviewOut:
    where = compile_filter(tree)
    matching, eligible = await repository.count(session, where)
    return PreviewOut(matching=matching, eligible=eligible,
                      sample=await repository.sample(session, where, sample_size))
