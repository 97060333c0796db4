"""Templates: an editor for HTML and MJML (errors shown with their line), a live preview
in a sandboxed frame at desktop and phone widths (as a chosen contact or with sample
data), the text part, versions side by side with a diff, a test send."""

from __future__ import annotations

import difflib
import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response

from mailer.auth.dependencies import Session
from mailer.console.roles import EDIT, VIEW
from mailer.console.web import back, form, parse, render, route, viewer_of
from mailer.errors import Invalid, NotFound
from mailer.message import service as messages
from mailer.message.schemas import MessageIn
from mailer.pagination import IdPage
from mailer.people import service as people
from mailer.template import service as templates
from mailer.template.schemas import RenderIn, TemplateIn, TemplateVersionIn

STARTER = (
    '{% extends "layouts/default.html" %}{% block content %}\n'
    "<h1>Hello {{ contact.attributes.first_name | default('there') }}</h1>\n"
    "<p>Write your message here.</p>\n{% endblock %}\n"
)


def _content(data: dict[str, str]) -> dict[str, Any]:
    return {
        "subject": data.get("subject", ""),
        "html": data.get("html", ""),
        "text": data.get("text") or None,
        "format": data.get("format") or "html",
    }


@route("GET", "/templates", VIEW)
async def template_list(request: Request, session: Session, page: IdPage) -> Response:
    found = await templates.page(session, page)
    return render(request, "templates.html", templates=found.items, next_cursor=found.next_cursor)


@route("GET", "/templates/new", EDIT)
async def new_template(request: Request) -> Response:
    return render(
        request,
        "template_editor.html",
        template=None,
        html=STARTER,
        subject="Hello",
        text="",
        format="html",
        versions=[],
        diff=None,
    )


@route("POST", "/templates", EDIT)
async def create(request: Request, session: Session) -> Response:
    data = await form(request)
    body = parse(TemplateIn, {"name": data.get("name", ""), **_content(data)})
    created = await templates.create(session, request.app.state.settings.templates_dir, body)
    await people.record(
        session,
        viewer_of(request).actor,
        "template.created",
        "template",
        created.id,
        {"name": created.name},
    )
    return back(f"/console/templates/{created.id}")


@route("POST", "/templates/preview", VIEW)  # reads only
async def preview(request: Request, session: Session) -> Response:
    """The editor's content, not saved yet, rendered (JSON in and out)."""
    try:
        given = json.loads(await request.body())
    except ValueError as exc:
        raise Invalid.at(["body"], "not JSON") from exc
    if not isinstance(given, dict):
        raise Invalid.at(["body"], "expected an object")
    draft = parse(
        TemplateVersionIn, _content({k: v for k, v in given.items() if isinstance(v, str)})
    )
    data = given.get("data") or {}
    if not isinstance(data, dict):
        raise Invalid.at(["body", "data"], "sample data is a JSON object")
    as_contact = given.get("email") or None
    rendered = await templates.render_draft(
        session,
        request.app.state.settings,
        draft,
        parse(RenderIn, {"data": data, "email": as_contact}),
    )
    return JSONResponse(rendered.model_dump())


@route("GET", "/templates/{template_id}", VIEW)
async def editor(request: Request, template_id: int, session: Session) -> Response:
    detail = await templates.get(session, template_id)
    diff = None
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if a and b and a.isdigit() and b.isdigit():
        left = await templates.version_number(session, template_id, int(a))
        right = await templates.version_number(session, template_id, int(b))
        if left is None or right is None:
            raise NotFound("no such version")
        diff = {
            "a": int(a),
            "b": int(b),
            "table": difflib.HtmlDiff(wrapcolumn=70).make_table(
                (left.source or left.html).splitlines(),
                (right.source or right.html).splitlines(),
                f"version {a}",
                f"version {b}",
                context=True,
            ),
            "subject": (left.subject, right.subject),
        }
    return render(
        request,
        "template_editor.html",
        template=detail,
        html=detail.source or detail.html,
        subject=detail.subject,
        text=detail.text or "",
        format=detail.format,
        versions=detail.versions,
        diff=diff,
        history=await people.history(session, "template", template_id),
        tested=request.query_params.get("tested"),
    )


@route("POST", "/templates/{template_id}", EDIT)
async def new_version(request: Request, template_id: int, session: Session) -> Response:
    data = await form(request)
    body = parse(TemplateVersionIn, {"name": data.get("name") or None, **_content(data)})
    saved = await templates.new_version(
        session, request.app.state.settings.templates_dir, template_id, body
    )
    await people.record(
        session,
        viewer_of(request).actor,
        "template.version_saved",
        "template",
        template_id,
        {"version": saved.version},
    )
    return back(f"/console/templates/{template_id}")


@route("POST", "/templates/{template_id}/test", EDIT)
async def test_send(request: Request, template_id: int, session: Session) -> Response:
    """The current version to the addresses given, as transactional test mail."""
    data = await form(request)
    to = [a.strip() for a in data.get("to", "").replace(";", ",").split(",") if a.strip()][:10]
    if not to:
        raise Invalid.at(["body", "to"], "give at least one address")
    requests = [
        messages.Request(
            parse(
                MessageIn,
                {"to": a, "from_address": data.get("from_address", ""), "template_id": template_id},
            ),
            None,
            ["body", "to", i],
        )
        for i, a in enumerate(to)
    ]
    settings = request.app.state.settings
    answers = await messages.accept(
        session, settings, request.app.state.arq, None, requests, request.app.state.senders
    )
    for answer in answers:
        if isinstance(answer, Exception):
            raise answer
    await people.record(
        session,
        viewer_of(request).actor,
        "template.test_sent",
        "template",
        template_id,
        {"to": to},
    )
    return back(f"/console/templates/{template_id}?tested={len(to)}")
