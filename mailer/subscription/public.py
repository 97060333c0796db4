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
from mailer.errors import Invalid, MailerError, error_body
from mailer.json_body import BadJson, is_json, parse_json
from mailer.middleware import (
    BodyTooLarge,
    answer_too_large,
    declared_length,
    has_body,
    header,
    read_body,
    replay,
    send_json,
)
from mailer.subscription import service, signup, tokens
from mailer.subscription.schemas import Submitted
from mailer.types import MAX_ID, Id

if TYPE_CHECKING:
    from jinja2 import Environment
    from starlette.types import ASGIApp, Receive, Scope, Send

router = APIRouter(tags=["subscribe"])
SUBSCRIBE_PREFIX = "/subscribe/"


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
async def subscribe(form_id: Id, request: Request) -> Response:
    """A signup: ``email``, the form's fields, ``token`` (from the form) and, on a form
    with several topics, ``topics``. The same answer whether the address was known."""
    fields = await _fields(request)
    ip, user_agent = _client(request)
    state = request.app.state
    checked = await signup.check(state.settings, state.arq, form_id, fields, ip, user_agent)
    done = await state.signups.submit(checked)
    if request.headers.get("content-type", "").startswith("application/json"):
        return JSONResponse(Submitted(message=done.message).model_dump())
    if done.redirect_url:
        return RedirectResponse(done.redirect_url, status_code=303)
    return _page(request, page="done", title=done.form_name, message=done.message)


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


class SignupEndpoint:
    """``POST /subscribe/{form_id}`` with a JSON body (a form of one's own, posted by its
    script) as a bare ASGI app: what :func:`subscribe` does, without the router and the
    dependency machinery. Anything else (a form post, a body that is not a JSON object
    the app's guard admits, an id that is not one) goes to ``fallback``, the whole app,
    so that every other answer is the app's own."""

    def __init__(self, state: Any, fallback: ASGIApp) -> None:
        self.state = state  # the app's state: the lifespan fills it
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        form_id = _form_id(scope["path"])
        limit = self.state.settings.max_body_bytes
        length = declared_length(scope)
        lean = (
            form_id is not None
            and is_json(scope)
            and has_body(scope)
            and (length is None or length <= limit)
            and b"\x00" not in scope["query_string"]
            and b"%00" not in scope["query_string"]
        )
        if not lean or form_id is None:
            await self.fallback(scope, receive, send)
            return
        try:
            raw = await read_body(receive, limit)
        except BodyTooLarge as exc:
            await answer_too_large(send, exc.limit, close=True)
            return
        if raw is None:
            return  # the client went away: nobody to answer
        try:
            fields = parse_json(raw)
        except BadJson:
            fields = None
        if not isinstance(fields, dict):
            await self.fallback(scope, replay(raw, receive), send)
            return
        client = scope.get("client")
        ip = client[0] if client else None
        agent = header(scope, b"user-agent")
        user_agent = None if agent is None else agent.decode("latin-1")
        state = self.state
        try:
            checked = await signup.check(state.settings, state.arq, form_id, fields, ip, user_agent)
            done = await state.signups.submit(checked)
        except MailerError as exc:
            await send_json(send, exc.status_code, error_body(exc.code, exc.message, exc.details))
            return
        await send_json(send, 200, {"status": "ok", "message": done.message})


def _form_id(path: str) -> int | None:
    """The id of ``/subscribe/{form_id}``; None for anything that is not a plain one."""
    rest = path[len(SUBSCRIBE_PREFIX) :]
    if not path.startswith(SUBSCRIBE_PREFIX) or not rest.isascii() or not rest.isdigit():
        return None
    number = int(rest) if len(rest) <= 19 else 0
    return number if 1 <= number <= MAX_ID else None
