"""Contacts: search by address, filter with a segment, a contact's page (attributes, tags,
status history, topics and consent records, suppression, messages and their events), edit,
unsubscribe, erase behind a confirmation; CSV imports with a progress bar and the report of
rejected rows."""

from __future__ import annotations

import csv
import io
import json
from typing import Annotated, Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from mailer.audience import service as segments
from mailer.auth.dependencies import Session
from mailer.console.roles import EDIT, VIEW
from mailer.console.subscription_pages import all_topics
from mailer.console.web import Blank, back, form, parse, render, route, viewer_of
from mailer.contact import imports
from mailer.contact import service as contacts
from mailer.contact.schemas import ContactPatch
from mailer.errors import Invalid, NotFound
from mailer.message import service as messages
from mailer.pagination import DEFAULT_LIMIT, IdPage, Page, id_cursor, parse_id_cursor
from mailer.people import service as people
from mailer.secrets import signing_key
from mailer.subscription import service as subscriptions
from mailer.suppression import service as suppressions
from mailer.types import BodyId

IMPORTS_PATH = "/console/imports"  # the app gives it the import body limit
MAX_SEARCH = 320
FIRST_CONSENT = Page[int](None, 100, id_cursor)  # a contact's first consent records


@route("GET", "/contacts", VIEW)
async def contact_list(
    request: Request,
    session: Session,
    page: IdPage,
    q: str = "",
    segment: Annotated[BodyId | None, Blank] = None,
) -> Response:
    """Contacts by id; ``q`` an address or the beginning of one, ``segment`` a saved
    segment."""
    q = q.strip().lower()[:MAX_SEARCH]
    parts: list[dict[str, Any]] = []
    if q:
        # a whole address is one lookup in the unique index; the beginning of one is a
        # scan in id order that stops at a page of matches (no prefix index on email:
        # it would slow every import down, see mailer/models/contact.py)
        whole = "@" in q and "." in q.rsplit("@", 1)[1]
        parts.append({"field": "email", "op": "eq" if whole else "starts_with", "value": q})
    if segment is not None:
        parts.append((await segments.read(session, segment)).filter)
    tree = None if not parts else parts[0] if len(parts) == 1 else {"all": parts}
    found = await contacts.page(session, tree, page)
    saved = await segments.page(session, Page(None, DEFAULT_LIMIT, id_cursor))
    return render(
        request,
        "contacts.html",
        contacts=found.items,
        next_cursor=found.next_cursor,
        q=q,
        segment=segment,
        segments=saved.items,
    )


MESSAGES_PER_PAGE = 25


@route("GET", "/contacts/{email}", VIEW)
async def contact_page(
    request: Request, email: str, session: Session, cursor: str | None = None
) -> Response:
    """The contact, its status history and suppression, and its messages (campaign and
    transactional, newest first, a page at a time) with their events."""
    contact = await contacts.get(session, email)
    try:
        suppression = await suppressions.get(session, contact.email)
    except NotFound:
        suppression = None
    last = None if cursor is None else parse_id_cursor(cursor)
    sent = await messages.of_contact(
        session, contact.email, Page(last, MESSAGES_PER_PAGE, id_cursor)
    )
    return render(
        request,
        "contact.html",
        contact=contact,
        attributes=json.dumps(contact.attributes, indent=2, ensure_ascii=False),
        suppression=suppression,
        history=await contacts.status_history(session, contact.id),
        messages=sent.items,
        next_cursor=sent.next_cursor,
        paged=cursor is not None,
        audit=await people.history(session, "contact", contact.email),
        topics=await all_topics(session),
        subscriptions={
            t.topic_id: t
            for t in (await subscriptions.contact_topics(session, contact.email)).topics
        },
        consent=await subscriptions.consent_records(session, contact.email, FIRST_CONSENT),
    )


@route("POST", "/contacts/{email}", EDIT)
async def edit_contact(request: Request, email: str, session: Session) -> Response:
    data = await form(request)
    current = await contacts.get(session, email)
    try:
        attributes = json.loads(data.get("attributes") or "{}")
    except ValueError as exc:
        raise Invalid.at(["body", "attributes"], f"the attributes are not JSON: {exc}") from exc
    if not isinstance(attributes, dict):
        raise Invalid.at(["body", "attributes"], "the attributes are a JSON object")
    # what the form leaves out is removed: null each key no longer there
    attributes = {**{k: None for k in current.attributes}, **attributes}
    tags = [t.strip() for t in data.get("tags", "").split(",") if t.strip()]
    patch = parse(
        ContactPatch,
        {
            "attributes": attributes,
            "tags_add": [t for t in tags if t not in current.tags],
            "tags_remove": [t for t in current.tags if t not in tags],
        },
    )
    await contacts.patch(session, current.email, patch)
    await people.record(
        session, viewer_of(request).actor, "contact.edited", "contact", current.email
    )
    return back(f"/console/contacts/{current.email}")


@route("POST", "/contacts/{email}/unsubscribe", EDIT)
async def unsubscribe(request: Request, email: str, session: Session) -> Response:
    contact = await contacts.patch(session, email, ContactPatch(status="unsubscribed"))
    await people.record(
        session, viewer_of(request).actor, "contact.unsubscribed", "contact", contact.email
    )
    return back(f"/console/contacts/{contact.email}")


@route("GET", "/contacts/{email}/erase", EDIT)
async def erase_page(request: Request, email: str, session: Session) -> Response:
    contact = await contacts.get(session, email)
    sent = await messages.of_contact(session, contact.email, Page(None, 1, id_cursor))
    return render(request, "erase.html", contact=contact, has_messages=bool(sent.items))


@route("POST", "/contacts/{email}/erase", EDIT)
async def erase(request: Request, email: str, session: Session) -> Response:
    data = await form(request)
    address = email.strip().lower()
    if data.get("confirm", "").strip().lower() != address:
        raise Invalid.at(["body", "confirm"], "type the address to confirm the erasure")
    erased = await contacts.erase(session, address, signing_key(request.app.state.settings))
    # the record names no address: the erasure is what was asked for
    await people.record(
        session,
        viewer_of(request).actor,
        "contact.erased",
        "erasure",
        "-",
        {"messages": erased.messages, "events": erased.events},
    )
    return render(
        request,
        "message.html",
        title="Erased",
        message=(
            f"Erased the contact, {erased.messages} message(s) and {erased.events} event(s)."
            + (" The address stays suppressed." if erased.suppressed else "")
        ),
        details=[],
    )


# -- imports -------------------------------------------------------------------------------


@route("GET", "/imports/new", EDIT)
async def import_page(request: Request) -> Response:
    return render(request, "import_new.html")


@route("POST", "/imports", EDIT)
async def upload(request: Request, session: Session) -> Response:
    """The raw body is the CSV file (sent by the page's script, which shows the upload's
    progress); answers where the import's report is."""
    content_type = request.headers.get("content-type", "")
    imports.check_import_type(content_type)
    tags = [t for t in request.query_params.getlist("tag") if t.strip()][:20]
    async with imports.spooled(request.stream()) as body:
        accepted = await imports.create_import(
            session, request.app.state.arq, body, content_type, tags
        )
    await people.record(session, viewer_of(request).actor, "import.started", "import", accepted.id)
    return JSONResponse({"id": accepted.id, "report": f"/console/imports/{accepted.id}"}, 202)


@route("GET", "/imports/{import_id}", VIEW)
async def import_report(request: Request, import_id: int, session: Session) -> Response:
    report = await imports.get_import(session, import_id)
    return render(request, "import.html", report=report)


@route("GET", "/imports/{import_id}/status", VIEW)
async def import_status(request: Request, import_id: int, session: Session) -> Response:
    report = await imports.get_import(session, import_id)
    return JSONResponse(
        report.model_dump(mode="json", exclude={"errors"}), headers={"Cache-Control": "no-store"}
    )


@route("GET", "/imports/{import_id}/rejected.csv", VIEW)
async def rejected_csv(request: Request, import_id: int, session: Session) -> Response:
    report = await imports.get_import(session, import_id)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["row", "email", "reason"])
    for e in report.errors:
        writer.writerow([e.row, _cell(e.email or ""), _cell(e.reason)])
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="import-{import_id}-rejected.csv"',
            "Cache-Control": "no-store",
        },
    )


def _cell(value: str) -> str:
    # a spreadsheet runs a cell that starts with = + - @ as a formula (CSV injection)
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value
