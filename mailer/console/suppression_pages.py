"""Suppressions: list and filter, add, remove with a reason, import a CSV file."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from mailer.auth.dependencies import Session
from mailer.console.roles import EDIT, VIEW
from mailer.console.web import back, form, parse, render, route, viewer_of
from mailer.contact import imports
from mailer.errors import Invalid
from mailer.pagination import KeyPage
from mailer.people import service as people
from mailer.suppression import service as suppressions
from mailer.suppression.schemas import SuppressionIn

IMPORTS_PATH = "/console/suppressions/import"


@route("GET", "/suppressions", VIEW)
async def suppression_list(
    request: Request,
    session: Session,
    page: KeyPage,
    reason: str = "",
    scope: str = "",
    source: str = "",
) -> Response:
    found = await suppressions.page(
        session, page, reason.strip()[:200] or None, scope or None, source or None
    )
    return render(
        request,
        "suppressions.html",
        suppressions=found.items,
        next_cursor=found.next_cursor,
        reason=reason,
        scope=scope,
        source=source,
    )


@route("POST", "/suppressions", EDIT)
async def add(request: Request, session: Session) -> Response:
    data = await form(request)
    body = parse(
        SuppressionIn,
        {"reason": data.get("reason") or "manual", "scope": data.get("scope") or "all"},
    )
    row, _ = await suppressions.put(session, data.get("email", ""), body)
    await people.record(
        session,
        viewer_of(request).actor,
        "suppression.added",
        "suppression",
        row.email,
        {"reason": row.reason, "scope": row.scope},
    )
    return back("/console/suppressions")


@route("POST", "/suppressions/{email}/remove", EDIT)
async def remove(request: Request, email: str, session: Session) -> Response:
    data = await form(request)
    why = data.get("why", "").strip()
    if not why:
        raise Invalid.at(["body", "why"], "say why the address may be mailed again")
    row = await suppressions.get(session, email)
    await suppressions.delete(session, email)
    await people.record(
        session,
        viewer_of(request).actor,
        "suppression.removed",
        "suppression",
        row.email,
        {"why": why[:500], "was": row.reason},
    )
    # the contact's page shows it too
    await people.record(
        session,
        viewer_of(request).actor,
        "suppression.removed",
        "contact",
        row.email,
        {"why": why[:500], "was": row.reason},
    )
    return back("/console/suppressions")


@route("POST", "/suppressions/import", EDIT)
async def import_file(request: Request, session: Session) -> Response:
    """The raw body is the CSV file, sent by the page's script."""
    content_type = request.headers.get("content-type", "")
    imports.check_import_type(content_type)
    async with imports.spooled(request.stream()) as body:
        report = await suppressions.import_csv(session, body, content_type)
    await people.record(
        session,
        viewer_of(request).actor,
        "suppression.imported",
        "suppression",
        "-",
    )
    return JSONResponse(report.model_dump(mode="json"))
