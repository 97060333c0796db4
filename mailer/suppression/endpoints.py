"""``/v1/suppressions`` (campaigns or admin scope) and the public unsubscribe pages."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from mailer.auth.dependencies import RequireScope, Session
from mailer.errors import NotFound
from mailer.openapi import csv_body
from mailer.pagination import KeyPage
from mailer.secrets import verifying_keys
from mailer.suppression import service
from mailer.suppression.schemas import (
    ImportReport,
    Scope,
    Source,
    SuppressionIn,
    SuppressionOut,
    SuppressionPage,
)

router = APIRouter(tags=["suppressions"], dependencies=[RequireScope.depends("campaigns")])
public_router = APIRouter(tags=["unsubscribe"])

if TYPE_CHECKING:
    from jinja2 import Environment


@router.get("/suppressions", response_model=SuppressionPage)
async def list_suppressions(
    session: Session,
    page: KeyPage,
    reason: Annotated[str | None, Query(max_length=200)] = None,
    scope: Scope | None = None,
    source: Source | None = None,
) -> SuppressionPage:
    return await service.page(session, page, reason, scope, source)


# the route with the import's body limit (mailer.app), besides the contact import
IMPORTS_PATH = "/v1/suppressions/imports"


@router.post(
    "/suppressions/imports",
    response_model=ImportReport,
    responses={422: {"description": "an unusable file (no address column, not CSV, empty)"}},
    openapi_extra=csv_body(
        "a CSV file with a header row: `email` (or `Email Address`), optional `reason` and"
        " `scope` (`all` or `marketing`)"
    ),
)
async def import_suppressions(request: Request, session: Session) -> ImportReport:
    """A suppression list exported from another tool: the raw body is a CSV file, streamed
    (the app's BodyLimit caps it at max_import_bytes); answered with the report at once.
    Columns and defaults: ``mailer.suppression.importer``."""
    return await service.import_csv(
        session, request.stream(), request.headers.get("content-type", "text/csv")
    )


@router.get("/suppressions/{email}", response_model=SuppressionOut)
async def get_suppression(email: str, session: Session) -> SuppressionOut:
    return await service.get(session, email)


@router.put("/suppressions/{email}", response_model=SuppressionOut)
async def put_suppression(
    email: str, body: SuppressionIn, session: Session, response: Response
) -> SuppressionOut:
    out, created = await service.put(session, email, body)
    response.status_code = 201 if created else 200
    return out


@router.delete("/suppressions/{email}", status_code=204)
async def delete_suppression(email: str, session: Session) -> Response:
    await service.delete(session, email)
    return Response(status_code=204)


@lru_cache(maxsize=4)
def _pages(directory: Path) -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape  # on the first page

    return Environment(loader=FileSystemLoader(directory), autoescape=select_autoescape())


# an unknown or forged link: a page a person can read, not a JSON error
_UNKNOWN_LINK: dict[int | str, dict[str, Any]] = {
    404: {
        "description": "an unknown link: an HTML page saying so",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
}


def _page(request: Request, state: str, status: int = 200, **context: object) -> Response:
    """The unsubscribe page in one of its states: confirm, done, already, unknown (every
    outcome a page a person can read, never a JSON error); HEAD gets the head alone."""
    if request.method == "HEAD":
        return Response(status_code=status, media_type="text/html")
    env = _pages(request.app.state.settings.templates_dir)
    body = env.get_template("unsubscribe.html").render(state=state, **context)
    return HTMLResponse(body, status_code=status)


@public_router.get("/unsubscribe/{token}", response_class=HTMLResponse, responses=_UNKNOWN_LINK)
async def unsubscribe_page(token: str, request: Request, session: Session) -> Response:
    """A small confirmation page with one button; nothing changes until it is pressed."""
    try:
        await service.check_link(session, verifying_keys(request.app.state.settings), token)
    except NotFound:
        return _page(request, "unknown", 404)
    return _page(request, "confirm", action=f"/unsubscribe/{token}")


@public_router.head("/unsubscribe/{token}", response_class=HTMLResponse, responses=_UNKNOWN_LINK)
async def unsubscribe_page_head(token: str, request: Request, session: Session) -> Response:
    """The page's head alone (link checkers and mail scanners ask): nothing changes."""
    return await unsubscribe_page(token, request, session)


@public_router.post(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    responses=_UNKNOWN_LINK,
)
async def unsubscribe(token: str, request: Request, session: Session) -> Response:
    """Unsubscribes at once, no login: RFC 8058 one-click (``List-Unsubscribe=One-Click``,
    form-urlencoded or multipart) from mail clients, or the page's button."""
    keys = verifying_keys(request.app.state.settings)
    try:
        service.message_of(keys, token)  # a forged token is a 404 before the body is read
    except NotFound:
        return _page(request, "unknown", 404)
    how = "page"
    try:
        form = await request.form()
        if form.get("List-Unsubscribe") == "One-Click":
            how = "one_click"
    except Exception:  # noqa: BLE001 - an odd body from a mail client still unsubscribes
        how = "post"
    try:
        new = await service.unsubscribe(session, keys, token, how)
    except NotFound:
        return _page(request, "unknown", 404)
    return _page(request, "done" if new else "already")
