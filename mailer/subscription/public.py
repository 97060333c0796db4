"""The public subscription pages, no login: ``/subscribe/{form_id}`` (the hosted form and
its submissions, HTML or JSON), ``/confirm/{token}`` and ``/preferences/{token}``."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from mailer.auth.dependencies import Session
from mailer.errors import Invalid
from mailer.subscription import service, signup, tokens
from mailer.subscription.schemas import Submitted
from mailer.types import Id

if TYPE_CHECKING:
    from jinja2 import Environment

router = APIRouter(tags=["subscribe"])


@lru_cache(maxsize=4)
def _pages(directory: Path) -> Environment:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(loader=FileSystemLoader(directory), autoescape=select_autoescape())


def _page(request: Request, status_code: int = 200, **context: Any) -> HTMLResponse:
    env = _pages(request.app.state.settings.templates_dir)
    body = env.get_template("subscription/page.html").render(**context)
    return HTMLResponse(body, status_code=status_code)


def _client(request: Request) -> tuple[str | None, str | None]:
    return (request.client.host if request.client else None), request.headers.get("user-agent")


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


@router.get(
    "/subscribe/{form_id}",
    response_class=HTMLResponse,
    responses={200: {"content": {"application/json": {}}}},
)
async def subscribe_page(form_id: Id, request: Request, session: Session) -> Response:
    """The hosted form; with ``Accept: application/json``, what a form of one's own needs
    to post (its fields, topics and a fresh form token)."""
    settings = request.app.state.settings
    form = await service.get_form(session, form_id)
    topics = await service.form_topics(session, form)
    token = tokens.form_token(settings, form.id, time.time())
    if _wants_json(request):
        return JSONResponse(
            {
                "form_id": form.id,
                "token": token,
                "fields": ["email", *form.fields],
                "topics": [{"id": t.id, "name": t.name} for t in topics],
                "consent_text": form.consent_text,
            }
        )
    return _page(request, page="form", title=form.name, form=form, topics=topics, token=token)


async def _fields(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        try:
            body = orjson.loads(await request.body())
        except orjson.JSONDecodeError as exc:
            raise Invalid.at(["body"], "not JSON") from exc
        if not isinstance(body, dict):
            raise Invalid.at(["body"], "a JSON object")
        return body
    try:
        form = await request.form()
    except Exception as exc:  # noqa: BLE001 - any undecodable body is the client's mistake
        raise Invalid.at(["body"], "a form post or a JSON object") from exc
    fields: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    fields["topics"] = [v for v in form.getlist("topics") if isinstance(v, str)]
    if any("\x00" in str(v) for v in [*fields.values(), *fields["topics"]]):
        raise Invalid.at(["body"], "a value holds a NUL character")
    return fields


@router.post(
    "/subscribe/{form_id}",
    response_model=Submitted,
    responses={
        303: {"description": "a form post, to the form's redirect_url"},
        429: {"description": "too many signups from this client or for this address"},
    },
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            }
        }
    },
)
async def subscribe(form_id: Id, request: Request, session: Session) -> Response:
    """A signup: ``email``, the form's fields, ``token`` (from the form) and, on a form
    with several topics, ``topics``. The same answer whether the address was known."""
    fields = await _fields(request)
    ip, user_agent = _client(request)
    settings = request.app.state.settings
    done = await signup.submit(
        session, settings, request.app.state.arq, form_id, fields, ip, user_agent
    )
    if request.headers.get("content-type", "").startswith("application/json"):
        return JSONResponse(done.model_dump())
    form = await service.get_form(session, form_id)
    if form.redirect_url:
        return RedirectResponse(form.redirect_url, status_code=303)
    return _page(request, page="done", title=form.name, message=done.message)


@router.get("/confirm/{token}", response_class=HTMLResponse)
async def confirm_page(token: str, request: Request) -> HTMLResponse:
    """A page with one button: mail scanners that follow links confirm nothing."""
    signup.check_confirm_token(request.app.state.settings, token)
    return _page(
        request, page="confirm", title="Confirm your subscription", action=request.url.path
    )


@router.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm(token: str, request: Request, session: Session) -> HTMLResponse:
    """Confirm once: the topics the link was sent for become subscribed."""
    settings = request.app.state.settings
    ip, user_agent = _client(request)
    contact_id = await signup.confirm(session, settings, token, ip, user_agent)
    url = f"/preferences/{tokens.preferences_token(settings, contact_id)}"
    return _page(request, page="confirmed", title="Subscribed", preferences_url=url)


@router.get("/preferences/{token}", response_class=HTMLResponse)
async def preferences_page(token: str, request: Request, session: Session) -> HTMLResponse:
    """The reader's topics (and the public ones), to join or leave."""
    contact_id = await signup.reader(session, request.app.state.settings, token)
    topics = await signup.preferences(session, contact_id)
    return _page(
        request,
        page="preferences",
        title="Your subscriptions",
        topics=topics,
        action=request.url.path,
    )


@router.post("/preferences/{token}", response_class=HTMLResponse)
async def save_preferences(token: str, request: Request, session: Session) -> HTMLResponse:
    """Save the reader's choice: ticked topics joined, the others left; ``leave_all``
    leaves every topic and all marketing mail."""
    contact_id = await signup.reader(session, request.app.state.settings, token)
    fields = await _fields(request)
    picked = fields.get("topics") or []
    picked = picked if isinstance(picked, list) else [picked]
    chosen = {int(t) for t in picked if str(t).isdigit() and len(str(t)) < 19}
    ip, user_agent = _client(request)
    await signup.choose(session, contact_id, chosen, bool(fields.get("leave_all")), ip, user_agent)
    topics = await signup.preferences(session, contact_id)
    return _page(
        request,
        page="preferences",
        title="Your subscriptions",
        topics=topics,
        action=request.url.path,
        saved=True,
    )
