"""/dashboard: the operator page, rendered on the server (Jinja, inline SVG charts).

Login takes an API key of scope ``reputation`` or ``admin``; the session is a cookie
signed with ``MAILER_SECRET_KEY`` (HMAC-SHA256) that names the key (never holds it),
HttpOnly, SameSite=Strict, limited to /dashboard. Every form carries a CSRF token derived
from the session, checked in constant time. Pausing and resuming need an admin key.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from mailer.auth import service as auth
from mailer.campaign import service as campaigns
from mailer.db import transaction
from mailer.errors import MailerError
from mailer.models import ApiKey
from mailer.ops.charts import bar_chart
from mailer.reputation import repository as reputation
from mailer.reputation import service as reputation_service

router = APIRouter(prefix="/dashboard", include_in_schema=False)

COOKIE = "mailer_session"
SESSION_SECONDS = 8 * 3600
MAX_FORM_BYTES = 4096

if TYPE_CHECKING:
    from jinja2 import Environment


@lru_cache
def _templates(directory: Path) -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape  # on the first page

    env = Environment(
        loader=FileSystemLoader(directory / "dashboard"),
        autoescape=select_autoescape(default=True),
        auto_reload=False,
    )
    env.globals["progress"] = campaigns.progress
    return env


def _render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    env = _templates(request.app.state.settings.templates_dir)
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
        },
    )


# -- the session ----------------------------------------------------------------------


@dataclass
class DashSession:
    key: ApiKey
    nonce: str
    csrf: str

    @property
    def can_act(self) -> bool:
        return "admin" in self.key.scopes


def _mac(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def sign_session(secret: str, key_id: int, now: float | None = None) -> str:
    expires = int((now or time.time()) + SESSION_SECONDS)
    payload = f"v1.{key_id}.{expires}.{secrets.token_urlsafe(16)}"
    return f"{payload}.{_mac(secret, 'session.' + payload)}"


def csrf_token(secret: str, nonce: str) -> str:
    return _mac(secret, "csrf." + nonce)[:40]


def _read_cookie(secret: str, value: str | None) -> tuple[int, str] | None:
    """(key id, nonce) of a valid, unexpired session cookie."""
    if not value or len(value) > 300:
        return None
    payload, _, mac = value.rpartition(".")
    if not hmac.compare_digest(mac, _mac(secret, "session." + payload)):
        return None
    parts = payload.split(".")
    if len(parts) != 4 or parts[0] != "v1" or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    if int(parts[2]) < time.time():
        return None
    return int(parts[1]), parts[3]


async def _session(request: Request) -> DashSession | None:
    secret = request.app.state.settings.secret_key
    found = _read_cookie(secret, request.cookies.get(COOKIE))
    if found is None:
        return None
    key_id, nonce = found
    async with request.app.state.sessionmaker() as db:
        key = (await db.execute(select(ApiKey).where(ApiKey.id == key_id))).scalar_one_or_none()
    if key is None or key.revoked_at is not None or not auth.allows(key, "reputation"):
        return None
    return DashSession(key, nonce, csrf_token(secret, nonce))


async def _form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    return {k: v[0] for k, v in parsed.items()}


def _login_redirect() -> RedirectResponse:
    return RedirectResponse("/dashboard/login", status_code=303)


def _secure(request: Request) -> bool:
    return str(request.app.state.settings.public_url).startswith("https://")


# -- pages ----------------------------------------------------------------------------


@router.get("/login")
async def login_page(request: Request) -> Response:
    if await _session(request) is not None:
        return RedirectResponse("/dashboard", status_code=303)
    return _render(request, "login.html", error=None)


@router.post("/login")
async def login(request: Request) -> Response:
    raw = (await _form(request)).get("key", "").strip()
    async with request.app.state.sessionmaker() as db:
        key = await auth.authenticate(db, raw) if raw else None
    if key is None:
        return _render(request, "login.html", 401, error="Unknown API key.")
    if not auth.allows(key, "reputation"):
        return _render(
            request,
            "login.html",
            403,
            error="This key has neither the 'reputation' nor the 'admin' scope.",
        )
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(
        COOKIE,
        sign_session(request.app.state.settings.secret_key, key.id),
        max_age=SESSION_SECONDS,
        path="/dashboard",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


async def _checked(request: Request) -> tuple[DashSession | None, dict[str, str], Response | None]:
    """The session of a form post whose CSRF token matches it, or the answer to give."""
    session = await _session(request)
    if session is None:
        return None, {}, _login_redirect()
    form = await _form(request)
    if not hmac.compare_digest(form.get("csrf", ""), session.csrf):
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
    _, _, refused = await _checked(request)
    if refused is not None:
        return refused
    response = _login_redirect()
    response.delete_cookie(
        COOKIE, path="/dashboard", httponly=True, samesite="strict", secure=_secure(request)
    )
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
            message="Pausing and resuming need a key with the 'admin' scope.",
        )
    try:
        async with transaction(request.app.state.sessionmaker) as db:
            if action == "pause":
                await campaigns.pause(db, campaign_id, reason="paused from the dashboard")
            else:
                await campaigns.resume(db, request.app.state.arq, campaign_id)
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
        charts=charts,
        now=now,
        settings=settings,
    )


def _floor(at: datetime, seconds: int) -> datetime:
    epoch = int(at.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)
