"""People (admins only): invite, change roles, end sessions, disable; the audit records."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import Response

from mailer.auth.dependencies import Session
from mailer.console.roles import PEOPLE
from mailer.console.web import back, form, render, route, viewer_of
from mailer.pagination import DEFAULT_LIMIT, IdPage, Page, id_cursor
from mailer.people import service as people


@route("GET", "/people", PEOPLE)
async def people_list(request: Request, session: Session, page: IdPage) -> Response:
    rows, next_cursor = await people.page(session, page)
    return render(request, "people.html", people=rows, next_cursor=next_cursor, invited=None)


@route("POST", "/people", PEOPLE)
async def invite(request: Request, session: Session) -> Response:
    data = await form(request)
    viewer = viewer_of(request)
    settings = request.app.state.settings
    person, link = await people.create(
        session, settings, request.app.state.arq, data.get("email", ""), data.get("role", "")
    )
    await people.record(
        session,
        viewer.actor,
        "person.invited",
        "person",
        person.id,
        {"email": person.email, "role": person.role},
    )
    rows, next_cursor = await people.page(session, Page(None, DEFAULT_LIMIT, id_cursor))
    return render(
        request,
        "people.html",
        201,
        people=rows,
        next_cursor=next_cursor,
        invited={"email": person.email, "link": link, "mailed": bool(settings.console_mail_from)},
    )


@route("POST", "/people/{person_id}/role", PEOPLE)
async def change_role(request: Request, person_id: int, session: Session) -> Response:
    data = await form(request)
    person = await people.set_role(session, person_id, data.get("role", ""))
    await people.record(
        session,
        viewer_of(request).actor,
        "person.role_changed",
        "person",
        person_id,
        {"email": person.email, "role": person.role},
    )
    return back("/console/people")


@route("POST", "/people/{person_id}/sessions/end", PEOPLE)
async def end_their_sessions(request: Request, person_id: int, session: Session) -> Response:
    ended = await people.end_sessions(session, person_id)
    await people.record(
        session,
        viewer_of(request).actor,
        "person.sessions_ended",
        "person",
        person_id,
        {"sessions": ended},
    )
    return back("/console/people")


@route("POST", "/people/{person_id}/disable", PEOPLE)
async def disable(request: Request, person_id: int, session: Session) -> Response:
    person = await people.disable(session, person_id)
    await people.record(
        session,
        viewer_of(request).actor,
        "person.disabled",
        "person",
        person_id,
        {"email": person.email},
    )
    return back("/console/people")


@route("GET", "/audit", PEOPLE)
async def audit(request: Request, session: Session, page: IdPage) -> Response:
    rows, next_cursor = await people.audit_page(session, page)
    return render(request, "audit.html", records=rows, next_cursor=next_cursor)
