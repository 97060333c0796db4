"""Segments over HTTP: create, list, read, replace, delete, count, preview."""

from __future__ import annotations

from fastapi import APIRouter, Response

from mailer.audience import service
from mailer.audience.schemas import (
    CountOut,
    PreviewIn,
    PreviewOut,
    SegmentIn,
    SegmentOut,
    SegmentPage,
)
from mailer.auth.dependencies import RequireScope, Session
from mailer.pagination import IdPage
from mailer.types import Id

router = APIRouter(tags=["segments"], dependencies=[RequireScope.depends("campaigns")])


@router.post("/segments", status_code=201, response_model=SegmentOut)
async def create_segment(body: SegmentIn, session: Session) -> SegmentOut:
    return await service.create(session, body.name, body.filter)


@router.post("/segments/preview", response_model=PreviewOut)
async def preview_segment(body: PreviewIn, session: Session) -> PreviewOut:
    return await service.preview(session, body.filter)


@router.get("/segments/{segment_id}/count", response_model=CountOut)
async def count_segment(segment_id: Id, session: Session) -> CountOut:
    return await service.count(session, segment_id)


@router.get("/segments", response_model=SegmentPage)
async def list_segments(session: Session, page: IdPage) -> SegmentPage:
    return await service.page(session, page)


@router.get("/segments/{segment_id}", response_model=SegmentOut)
async def get_segment(segment_id: Id, session: Session) -> SegmentOut:
    return await service.read(session, segment_id)


@router.put("/segments/{segment_id}", response_model=SegmentOut)
async def put_segment(segment_id: Id, body: SegmentIn, session: Session) -> SegmentOut:
    return await service.replace(session, segment_id, body.name, body.filter)


@router.delete("/segments/{segment_id}", status_code=204)
async def delete_segment(segment_id: Id, session: Session) -> Response:
    """Delete a segment; 409 naming the campaigns when any uses it."""
    await service.delete(session, segment_id)
    return Response(status_code=204)
