"""Sign-in, sign-out, invitation and password-reset pages, and one's own account.

Failed sign-ins are counted per client address and per account (``mailer.auth.throttle``,
as the dashboard's key logins are) and refused with 429 past the limit. The login form
carries a CSRF token bound to a short-lived cookie of its own (login CSRF).
"""

from __future__ import annotations

import secrets as random

from fastapi import Request
from fastapi.responses import Response

from mailer import secrets
from mailer.auth import sessions
from mailer.auth.dependencies import Session
from mailer.auth.throttle import LoginThrottle
from mailer.console.roles import PUBLIC, VIEW
from mailer.console.web import (
    COOKIE,
    LOGIN_COOKIE,
    back,
    find_viewer,
    forget_cookie,
    form,
    render,
    route,
    set_cookie,
    viewer_of,
)
from mailer.db import transaction
from mailer.errors import MailerError
from mailer.people import service as people
from mailer.people.repository import SUBJECT_KIND

LOGIN_FORM_SECONDS = 3600
MAX_NEXT = 500


def _next(target: str | None) -> str:
    """Where to go after signing in: a path of the console or the dashboard, nothing else."""
    if (
        target
        and len(target) <= MAX_NEXT
        and target.startswith(("/console", "/dashboard"))
        and "//" not in target
        and "\\" not in target
    ):
        return target
    return "/console"


def _login_form(
    request: Request, status: int = 200, error: str | None = None, **headers: str
) -> Response:
    nonce = random.token_urlsafe(24)
    csrf = secrets.sign(request.app.state.settings, "console-login", nonce)
    response = render(
        request,
        "login.html",
        status,
        headers,
        error=error,
        csrf=csrf,
        next=_next(request.query_params.get("next")),
        email=request.query_params.get("email", ""),
    )
    set_cookie(request, response, LOGIN_COOKIE, nonce, LOGIN_FORM_SECONDS)
    return response


async def _start(request: Request, person_id: int, target: str) -> Response:
    settings = request.app.state.settings
    async with transaction(request.app.state.sessionmaker) as db:
        cookie = await sessions.start(db, settings, SUBJECT_KIND, person_id)
    response = back(target)
    set_cookie(request, response, COOKIE, cookie, int(settings.dashboard_session_hours * 3600))
    forget_cookie(request, response, LOGIN_COOKIE)
    return response


@route("GET", "/login", PUBLIC)
async def login_page(request: Request) -> Response:
    if await find_viewer(request) is not None:
        return back(_next(request.query_params.get("next")))
    return _login_form(request)


@route("POST", "/login", PUBLIC)
async def login(request: Request) -> Response:
    settings = request.app.state.settings
    data = await form(request)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not secrets.verify(settings, "console-login", nonce, data.get("csrf", "")):
        return _login_form(
            request, 403, "The sign-in form expired or did not come from this page; try again."
        )
    email = data.get("email", "").strip().lower()[:320]
    address = request.client.host if request.client else None
    account = f"person:{email}"
    throttle = LoginThrottle(
        request.app.state.arq, settings.login_max_failures, settings.login_failure_window_seconds
    )
    wait = await throttle.retry_after(address, account)
    if wait is not None:
        return _login_form(
            request,
            429,
            f"Too many failed sign-ins; try again in {(wait + 59) // 60} minute(s).",
            **{"Retry-After": str(wait)},
        )
    async with transaction(request.app.state.sessionmaker) as db:
        person = await people.authenticate(db, email, data.get("password", ""))
    if person is None:
        await throttle.failed(address, account)
        return _login_form(request, 401, "Unknown address or wrong password.")
    return await _start(request, person.id, _next(data.get("next")))


@route("POST", "/logout", VIEW)
async def logout(request: Request) -> Response:
    viewer = viewer_of(request)
    async with transaction(request.app.state.sessionmaker) as db:
        await sessions.end(db, viewer.session_id)
    response = back("/console/login")
    forget_cookie(request, response, COOKIE)
    return response


# -- one-time links --------------------------------------------------------------------

PURPOSE_TITLES = {"invitation": "Set your password", "reset": "Choose a new password"}


async def _link_page(request: Request, session: Session, purpose: str, token: str) -> Response:
    person = await people.token_person(session, purpose, token)
    return render(
        request,
        "password.html",
        title=PURPOSE_TITLES[purpose],
        email=person.email,
        action=request.url.path,
        error=None,
    )


async def _redeem(request: Request, purpose: str, token: str) -> Response:
    data = await form(request)
    if data.get("password", "") != data.get("again", ""):
        return render(
            request,
            "password.html",
            422,
            title=PURPOSE_TITLES[purpose],
            email="",
            action=request.url.path,
            error="The two passwords differ.",
        )
    try:
        async with transaction(request.app.state.sessionmaker) as db:
            person = await people.redeem(db, purpose, token, data.get("password", ""))
            await people.record(
                db,
                people.Actor(person.id, person.email),
                "person.password_set" if purpose == "invitation" else "person.password_reset",
                "person",
                person.id,
            )
    except MailerError as exc:
        if exc.status_code != 422:
            raise
        return render(
            request,
            "password.html",
            422,
            title=PURPOSE_TITLES[purpose],
            email="",
            action=request.url.path,
            error=exc.message,
        )
    return await _start(request, person.id, "/console")


@route("GET", "/invitation/{token}", PUBLIC)
async def invitation_page(request: Request, token: str, session: Session) -> Response:
    return await _link_page(request, session, "invitation", token)


@route("POST", "/invitation/{token}", PUBLIC)
async def accept_invitation(request: Request, token: str) -> Response:
    return await _redeem(request, "invitation", token)


@route("GET", "/reset", PUBLIC)
async def reset_request_page(request: Request) -> Response:
    return render(request, "reset.html", sent=False)


@route("POST", "/reset", PUBLIC)
async def reset_request(request: Request, session: Session) -> Response:
    data = await form(request)
    settings = request.app.state.settings
    address = request.client.host if request.client else None
    throttle = LoginThrottle(
        request.app.state.arq, settings.login_max_failures, settings.login_failure_window_seconds
    )
    email = data.get("email", "").strip().lower()[:320]
    # reset requests count as failures: nobody mails an account in a loop from here
    if await throttle.retry_after(address, f"person:{email}") is None:
        await throttle.failed(address, f"person:{email}")
        await people.request_reset(session, settings, request.app.state.arq, email)
    # the same answer whether the account exists or not
    return render(request, "reset.html", sent=True)


@route("GET", "/reset/{token}", PUBLIC)
async def reset_page(request: Request, token: str, session: Session) -> Response:
    return await _link_page(request, session, "reset", token)


@route("POST", "/reset/{token}", PUBLIC)
async def reset(request: Request, token: str) -> Response:
    return await _redeem(request, "reset", token)


# -- one's own account -----------------------------------------------------------------


@route("GET", "/account", VIEW)
async def account(request: Request, session: Session) -> Response:
    viewer = viewer_of(request)
    live = await people.live_sessions(session, viewer.person.id)
    return render(request, "account.html", sessions=live, current=viewer.session_id, error=None)


@route("POST", "/account/password", VIEW)
async def change_password(request: Request) -> Response:
    viewer = viewer_of(request)
    data = await form(request)
    try:
        async with transaction(request.app.state.sessionmaker) as db:
            person = await people.get(db, viewer.person.id)
            await people.change_password(db, person, data.get("current", ""), data.get("new", ""))
            await people.record(db, viewer.actor, "person.password_changed", "person", person.id)
    except MailerError as exc:
        if exc.status_code != 422:
            raise
        async with request.app.state.sessionmaker() as db:
            live = await people.live_sessions(db, viewer.person.id)
        return render(
            request,
            "account.html",
            422,
            sessions=live,
            current=viewer.session_id,
            error=exc.message,
        )
    # every session ended with the change; this browser gets a fresh one
    return await _start(request, viewer.person.id, "/console/account")


@route("POST", "/account/sessions/{session_id}/end", VIEW)
async def end_own_session(request: Request, session_id: int, session: Session) -> Response:
    viewer = viewer_of(request)
    await people.end_session(session, viewer.person.id, session_id)
    if session_id == viewer.session_id:
        response = back("/console/login")
        forget_cookie(request, response, COOKIE)
        return response
    return back("/console/account")
