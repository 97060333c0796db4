"""/dashboard: the operator page, rendered on the server (Jinja, inline SVG charts).

Login takes an API key of scope ``reputation`` or ``admin``. The login form carries a CSRF
token bound to a short-lived cookie of its own (login CSRF: no other site can sign a
browser in with the site's key); failed logins are counted per client address and per key
prefix (``mailer.auth.throttle``) and answered 429 past the limit. A session is a row of
``web_sessions`` (``mailer.auth.sessions``) named by a signed cookie (HttpOnly,
SameSite=Strict, limited to /dashboard): logout ends it on the server, and so does
revoking its key. Every form carries a CSRF token derived from the session, checked in
constant time. Pausing and resuming need an admin key.
"""

from __future__ import annotations

import secrets as random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from mailer import secrets
from mailer.auth import service as auth
from mailer.auth import sessions
from mailer.auth.throttle import LoginThrottle
from mailer.campaign import service as campaigns
from mailer.console.roles import PAUSE
from mailer.console.web import find_viewer as console_viewer
from mailer.console.web import forget_cookie, page_templates, set_cookie
from mailer.db import transaction
from mailer.errors import MailerError
from mailer.models import ApiKey
from mailer.ops.charts import bar_chart
from mailer.people import service as people
from mailer.people.service import Actor
from mailer.reputation import repository as reputation
from mailer.reputation import service as reputation_service
from mailer.webhook_out import service as webhook_out

router = APIRouter(prefix="/dashboard", include_in_schema=False)

COOKIE = "mailer_session"
LOGIN_COOKIE = "mailer_login"  # the login form's CSRF nonce
PATH = "/dashboard"  # the dashboard's own cookies go to its pages only
LOGIN_FORM_SECONDS = 3600
MAX_FORM_BYTES = 4096


def _render(
    request: Request,
    name: str,
    status: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    env = page_templates(request.app.state.settings.templates_dir, "dashboard")
    html = env.get_template(name).render(**context)
    return HTMLResponse(
        html,
        status,
        headers={
            "Cache-Control": "no-store",
            "X-Frame-Options": "DENY",
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'",
            **(headers or {}),
        },
    )


# -- the session ----------------------------------------------------------------------


@dataclass
class DashSession:
    who: str  # the key's name and scopes, or the person's address and role
    session_id: int
    token: str  # the session's secret, from its cookie: CSRF tokens are derived from it
    csrf: str
    can_act: bool  # pause and resume: an admin key, or a person whose role may
    person_id: int | None = None


async def _session(request: Request) -> DashSession | None:
    # people sign in once, in the console (mailer.console), and their session opens this page
    viewer = await console_viewer(request)
    if viewer is not None:
        return DashSession(
            f"{viewer.person.email} ({viewer.person.role})",
            viewer.session_id,
            viewer.token,
            viewer.csrf,
            viewer.can(PAUSE),
            viewer.person.id,
        )
    settings = request.app.state.settings
    async with request.app.state.sessionmaker() as db:
        found = await sessions.find(db, settings, request.cookies.get(COOKIE))
        if found is None:
            return None
        row, token = found
        if row.subject_kind != "api_key":
            return None
        key = (
            await db.execute(select(ApiKey).where(ApiKey.id == row.subject_id))
        ).scalar_one_or_none()
    if key is None or key.revoked_at is not None or not auth.allows(key, "reputation"):
        return None
    return DashSession(
        f"{key.name} ({', '.join(key.scopes)})",
        row.id,
        token,
        sessions.csrf_token(settings, token),
        "admin" in key.scopes,
    )


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    return {k: v[0] for k, v in parsed.items()}


def _login_redirect() -> RedirectResponse:
    return RedirectResponse("/dashboard/login", status_code=303)


# -- pages ----------------------------------------------------------------------------


def _login_form(
    request: Request, status: int = 200, error: str | None = None, **headers: str
) -> Response:
    """The login page with a fresh login-CSRF nonce in its cookie and its token in the form."""
    nonce = random.token_urlsafe(24)
    csrf = secrets.sign(request.app.state.settings, "login", nonce)
    response = _render(request, "login.html", status, headers, error=error, csrf=csrf)
    set_cookie(request, response, LOGIN_COOKIE, nonce, LOGIN_FORM_SECONDS, path=PATH)
    return response


@router.get("/login")
async def login_page(request: Request) -> Response:
    if await _session(request) is not None:
        return RedirectResponse("/dashboard", status_code=303)
    return _login_form(request)


@router.post("/login")
async def login(request: Request) -> Response:
    settings = request.app.state.settings
    form = await _form(request)
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not secrets.verify(settings, "login", nonce, form.get("csrf", "")):
        return _login_form(
            request, 403, "The login form expired or did not come from this page; try again."
        )
    raw = form.get("key", "").strip()
    parts = auth.split_key(raw)
    address = request.client.host if request.client else None
    throttle = LoginThrottle(
        request.app.state.arq, settings.login_max_failures, settings.login_failure_window_seconds
    )
    wait = await throttle.retry_after(address, parts[0] if parts else None)
    if wait is not None:
        return _login_form(
            request,
            429,
            f"Too many failed logins; try again in {(wait + 59) // 60} minute(s).",
            **{"Retry-After": str(wait)},
        )
    async with transaction(request.app.state.sessionmaker) as db:
        key = await auth.authenticate(db, raw) if raw else None
    if key is None:
        await throttle.failed(address, parts[0] if parts else None)
        return _login_form(request, 401, "Unknown API key.")
    if not auth.allows(key, "reputation"):
        return _login_form(
            request, 403, "This key has neither the 'reputation' nor the 'admin' scope."
        )
    async with transaction(request.app.state.sessionmaker) as db:
        cookie = await sessions.start(db, settings, "api_key", key.id)
    response = RedirectResponse("/dashboard", status_code=303)
    hours = settings.dashboard_session_hours
    set_cookie(request, response, COOKIE, cookie, int(hours * 3600), path=PATH)
    forget_cookie(request, response, LOGIN_COOKIE, path=PATH)
    return response


async def _checked(request: Request) -> tuple[DashSession | None, dict[str, str], Response | None]:
    """The session of a form post whose CSRF token matches it, or the answer to give."""
    session = await _session(request)
    if session is None:
        return None, {}, _login_redirect()
    form = await _form(request)
    if not sessions.csrf_ok(request.app.state.settings, session.token, form.get("csrf", "")):
        return (
            None,
            form,
            _render(
                request,
                "message.html",
                403,
                title="Forbidden",
                message="The form's CSRF token does not match your session.",
            ),
        )
    return session, form, None


@router.post("/logout")
async def logout(request: Request) -> Response:
    session, _, refused = await _checked(request)
    if refused is not None:
        return refused
    assert session is not None
    async with transaction(request.app.state.sessionmaker) as db:
        await sessions.end(db, session.session_id)
    response = _login_redirect()
    forget_cookie(request, response, COOKIE, path=PATH)
    return response


@router.post("/campaigns/{campaign_id}/{action}")
async def campaign_action(request: Request, campaign_id: int, action: str) -> Response:
    session, _, refused = await _checked(request)
    if refused is not None:
        return refused
    assert session is not None
    if action not in ("pause", "resume"):
        return _render(
            request, "message.html", 404, title="Not found", message=f"No action {action!r}."
        )
    if not session.can_act:
        return _render(
            request,
            "message.html",
            403,
            title="Forbidden",
            message="Pausing and resuming need a key with the 'admin' scope (or the console"
            " role admin, marketer or operator).",
        )
    try:
        async with transaction(request.app.state.sessionmaker) as db:
            if action == "pause":
                await campaigns.pause(db, campaign_id, reason="paused from the dashboard")
            else:
                await campaigns.resume(db, request.app.state.arq, campaign_id)
            if session.person_id is not None:
                actor = Actor(session.person_id, session.who.split(" ", 1)[0])
                await people.record(db, actor, f"campaign.{action}d", "campaign", campaign_id)
    except MailerError as exc:
        return _render(
            request, "message.html", exc.status_code, title="Not done", message=exc.message
        )
    return RedirectResponse("/dashboard", status_code=303)


@router.get("")
async def dashboard(request: Request) -> Response:
    session = await _session(request)
    if session is None:
        return _login_redirect()
    settings = request.app.state.settings
    now = datetime.now(UTC)
    async with request.app.state.sessionmaker() as db:
        report = await reputation_service.report(db, settings)
        recent = await reputation.recent_campaigns(db)
        pauses = await reputation.recent_pauses(db)
        webhooks = await webhook_out.dashboard_rows(db)
        per_minute = await reputation.series(db, None, 3600, 60)
        per_class = {
            mc: await reputation.series(db, mc, 86400, 1800) for mc in settings.configuration_sets
        }
    hour_ago = now.replace(second=0, microsecond=0) - timedelta(minutes=59)
    charts = [
        bar_chart(
            "Send rate (sends/s, per minute), last hour",
            [(r.at, float(r.sent) / 60) for r in per_minute],
            hour_ago,
            hour_ago + timedelta(hours=1),
            60,
            unit="/s",
        )
    ]
    day_ago = _floor(now, 1800) - timedelta(hours=23, minutes=30)
    for mail_class, rows in per_class.items():
        for kind, column, limit in (
            ("Bounce rate", "hard_bounces", settings.bounce_rate_threshold),
            ("Complaint rate", "complaints", settings.complaint_rate_threshold),
        ):
            points = [
                (r.at, float(getattr(r, column)) / float(r.sent) if r.sent else 0.0) for r in rows
            ]
            charts.append(
                bar_chart(
                    f"{kind} of {mail_class} mail, last 24 h (30 min)",
                    points,
                    day_ago,
                    day_ago + timedelta(hours=24),
                    1800,
                    unit="%",
                    threshold=limit,
                )
            )
    return _render(
        request,
        "index.html",
        session=session,
        report=report,
        campaigns=recent,
        pauses=pauses,
        webhooks=webhooks,
        charts=charts,
        now=now,
        settings=settings,
    )


def _floor(at: datetime, seconds: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)
