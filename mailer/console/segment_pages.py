"""Segments: the saved ones with their counts, and a rule builder (conditions and
``all``/``any``/``not`` groups) whose matching and eligible counts and sample update as
the rules change (the page's script posts the tree to ``/console/segments/preview``)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from mailer.audience import service as segments
from mailer.audience.filters import OPS, ORDER_OPS
from mailer.audience.schemas import SegmentIn
from mailer.auth.dependencies import Session
from mailer.console.roles import EDIT, VIEW
from mailer.console.web import back, form, parse, render, route, viewer_of
from mailer.errors import Invalid
from mailer.pagination import IdPage
from mailer.people import service as people

# the operators the builder offers for each field (the filter language accepts more)
FIELD_OPS = {
    "email": ["eq", "ne", "in", "not_in", "contains", "starts_with", "ends_with"],
    "created_at": list(ORDER_OPS),
    "tags": ["contains", "ne", "in", "not_in", "exists"],
    "attributes": list(OPS),  # every operator of the filter language
}


def _tree(raw: str) -> dict[str, Any]:
    try:
        tree = json.loads(raw)
    except ValueError as exc:
        raise Invalid.at(["body", "filter"], f"the filter is not JSON: {exc}") from exc
    if not isinstance(tree, dict):
        raise Invalid.at(["body", "filter"], "the filter is a JSON object")
    return tree


@route("GET", "/segments", VIEW)
async def segment_list(request: Request, session: Session, page: IdPage) -> Response:
    # the counts come afterwards, one request each (the page's script): a page of 100
    # segments over a million contacts would otherwise wait for 100 counts
    found = await segments.page(session, page)
    return render(request, "segments.html", segments=found.items, next_cursor=found.next_cursor)


@route("GET", "/segments/new", EDIT)
async def builder(request: Request) -> Response:
    return render(
        request,
        "segment_builder.html",
        segment=None,
        field_ops=FIELD_OPS,
        tree=json.dumps({"all": []}),
    )


@route("GET", "/segments/{segment_id}", VIEW)
async def segment_page(request: Request, segment_id: int, session: Session) -> Response:
    segment = await segments.read(session, segment_id)
    return render(
        request,
        "segment_builder.html",
        segment=segment,
        field_ops=FIELD_OPS,
        tree=json.dumps(segment.filter),
        count=None,  # the builder's script asks for the counts as soon as it has drawn
    )


@route("POST", "/segments", EDIT)
async def save(request: Request, session: Session) -> Response:
    data = await form(request)
    body = parse(SegmentIn, {"name": data.get("name", ""), "filter": _tree(data.get("filter", ""))})
    created = await segments.create(session, body.name, body.filter)
    await people.record(
        session,
        viewer_of(request).actor,
        "segment.created",
        "segment",
        created.id,
        {"name": created.name},
    )
    return back("/console/segments")


@route("POST", "/segments/preview", VIEW)  # reads only
async def preview(request: Request, session: Session) -> Response:
    """Counts and a sample of a filter tree (JSON body) for the builder: changes nothing."""
    try:
        tree = json.loads(await request.body())
    except ValueError as exc:
        raise Invalid.at(["body"], "not JSON") from exc
    if not isinstance(tree, dict) or not isinstance(tree.get("filter"), dict):
        raise Invalid.at(["body", "filter"], 'expected {"filter": {...}}')
    found = await segments.preview(session, tree["filter"])
    return JSONResponse(found.model_dump())


@route("POST", "/segments/{segment_id}", EDIT)
async def replace(request: Request, segment_id: int, session: Session) -> Response:
    data = await form(request)
    body = parse(SegmentIn, {"name": data.get("name", ""), "filter": _tree(data.get("filter", ""))})
    await segments.replace(session, segment_id, body.name, body.filter)
    await people.record(
        session,
        viewer_of(request).actor,
        "segment.changed",
        "segment",
        segment_id,
        {"name": body.name},
    )
    return back("/console/segments")


@route("GET", "/segments/{segment_id}/count", VIEW)
async def segment_count(request: Request, segment_id: int, session: Session) -> Response:
    """Matching and eligible counts of a saved segment (the campaign wizard shows them)."""
    return JSONResponse((await segments.count(session, segment_id)).model_dump())
