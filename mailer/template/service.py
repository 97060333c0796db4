"""Templates: versioned, syntax-checked on save (MJML compiled then), rendered in the sandbox."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from mailer.config import Settings
from mailer.contact import repository as contacts
from mailer.contact.addresses import normalise
from mailer.errors import Conflict, Invalid, NotFound
from mailer.models import Template, TemplateVersion
from mailer.pagination import Page
from mailer.template import repository
from mailer.template.schemas import (
    RenderIn,
    RenderOut,
    TemplateDetail,
    TemplateIn,
    TemplateOut,
    TemplatePage,
    TemplateSummary,
    TemplateVersionIn,
    VersionOut,
)


def validate(templates_dir: Path, subject: str, html: str, text: str | None) -> None:
    """A Jinja syntax error is a 422 naming the part (subject, html, text) and the line."""
    # the rendering stack (jinja2, css_inline, inscriptis, lxml, mrml: ~15 MB) loads on
    # first use: an API process that never saves or renders a template does without it
    from jinja2 import TemplateNotFound

    from mailer.deliverability.hygiene import refuse_unsafe
    from mailer.template.compiler import TemplateSyntaxError, check_syntax

    refuse_unsafe(html, ["body", "html"])
    for part, source in (("subject", subject), ("html", html), ("text", text)):
        if source is None:
            continue
        try:
            check_syntax(templates_dir, part, source)
        except TemplateSyntaxError as exc:
            where = part if exc.name in (None, part) else f"{part} (in {exc.name})"
            message = f"{where}: line {exc.lineno}: {exc.message}"
            raise Invalid(
                message,
                [
                    {
                        "path": ["body", part],
                        "line": exc.lineno,
                        "message": exc.message or "syntax error",
                    }
                ],
            ) from exc
        except TemplateNotFound as exc:
            raise Invalid.at(["body", part], f"{part}: template {exc.name!r} not found") from exc


def content(templates_dir: Path, body: TemplateIn | TemplateVersionIn) -> tuple[str, str | None]:
    """The HTML to store and render, and the MJML source (None for HTML); 422 if invalid.

    Jinja is checked on what the author wrote, so the line numbers are theirs; MJML is
    compiled once, here, and the result is checked again.
    """
    from mailer.template.content import MjmlError, mjml_to_html  # on first use (validate)

    validate(templates_dir, body.subject, body.html, body.text)
    if body.format == "html":
        return body.html, None
    try:
        compiled = mjml_to_html(body.html)
    except MjmlError as exc:
        raise Invalid.at(["body", "html"], f"html: MJML: {exc}") from exc
    validate(templates_dir, body.subject, compiled, None)
    return compiled, body.html


def _out(template: Template, version: TemplateVersion) -> TemplateOut:
    return TemplateOut(
        id=template.id,
        name=template.name,
        version=version.version,
        subject=version.subject,
        html=version.html,
        text=version.text,
        format=version.format,  # type: ignore[arg-type]
        source=version.source,
        created_at=version.created_at,
    )


async def create(session: AsyncSession, templates_dir: Path, body: TemplateIn) -> TemplateOut:
    html, source = content(templates_dir, body)
    template = await repository.insert(session, body.name)
    version = await repository.add_version(
        session, template.id, 1, body.subject, html, body.text, body.format, source
    )
    await session.refresh(version)
    return _saved(template, version)


def _saved(template: Template, version: TemplateVersion) -> TemplateOut:
    """The save answer: the version, and what mailbox providers would distrust in it."""
    from mailer.deliverability.hygiene import warnings

    out = _out(template, version)
    out.warnings = warnings(version.html)
    return out


async def new_version(
    session: AsyncSession, templates_dir: Path, template_id: int, body: TemplateVersionIn
) -> TemplateOut:
    """A new version; campaigns keep the version they were created with."""
    html, source = content(templates_dir, body)
    template = await repository.get_for_update(session, template_id)
    if template is None:
        raise NotFound(f"no template {template_id}")
    template.current_version += 1
    if body.name:
        template.name = body.name
    version = await repository.add_version(
        session,
        template.id,
        template.current_version,
        body.subject,
        html,
        body.text,
        body.format,
        source,
    )
    await session.refresh(version)
    return _saved(template, version)


async def get(session: AsyncSession, template_id: int) -> TemplateDetail:
    """The current version, and every version's number, subject and date."""
    found = await repository.current(session, template_id)
    if found is None:
        raise NotFound(f"no template {template_id}")
    versions = [
        VersionOut(
            version=v.version,
            subject=v.subject,
            format=v.format,  # type: ignore[arg-type]
            created_at=v.created_at,
        )
        for v in await repository.versions(session, template_id)
    ]
    return TemplateDetail(**_out(*found).model_dump(), versions=versions)


async def page(session: AsyncSession, page: Page[int]) -> TemplatePage:
    rows, next_cursor = page.cut(
        await repository.page(session, page.last or 0, page.fetch), key=lambda t: t.id
    )
    items = [
        TemplateSummary(id=t.id, name=t.name, version=t.current_version, created_at=t.created_at)
        for t in rows
    ]
    return TemplatePage(items=items, next_cursor=next_cursor)


async def version_number(
    session: AsyncSession, template_id: int, number: int
) -> TemplateVersion | None:
    """Version ``number`` of a template; NotFound when there is no such template."""
    await current_version(session, template_id)
    return await repository.version_number(session, template_id, number)


async def delete(session: AsyncSession, template_id: int) -> None:
    """Delete a template and its versions; 409 while a campaign uses it or a message
    waits to be rendered from it."""
    if await repository.get_for_update(session, template_id) is None:
        raise NotFound(f"no template {template_id}")
    campaigns, pending = await repository.delete(session, template_id)
    if campaigns or pending:
        users = []
        if campaigns:
            users.append(f"campaigns {', '.join(map(str, campaigns))}")
        if pending:
            users.append(f"{pending} messages not sent yet")
        raise Conflict(
            f"template {template_id} is used by {' and '.join(users)}",
            [{"campaign_ids": campaigns, "pending_messages": pending}],
        )


async def version(session: AsyncSession, version_id: int) -> TemplateVersion:
    found = await repository.version_by_id(session, version_id)
    if found is None:
        raise NotFound(f"no template version {version_id}")
    return found


async def current_version(session: AsyncSession, template_id: int) -> TemplateVersion:
    found = await repository.current(session, template_id)
    if found is None:
        raise NotFound(f"no template {template_id}")
    return found[1]


PREVIEW_EMAIL = "preview@example.com"


async def render(
    session: AsyncSession, settings: Settings, template_id: int, body: RenderIn
) -> RenderOut:
    """The current version rendered as a message would be: with the contact named by
    ``email`` (404 if there is none) or a contact without attributes, and ``data``."""
    version = await current_version(session, template_id)
    return await _render(
        session, settings, version.id, version.subject, version.html, version.text, body
    )


async def render_draft(
    session: AsyncSession, settings: Settings, draft: TemplateVersionIn, body: RenderIn
) -> RenderOut:
    """Content not saved yet (the console's editor), checked as a new version would be
    (a 422 naming the part and the line), then rendered as :func:`render` does."""
    html, _ = content(settings.templates_dir, draft)
    return await _render(session, settings, None, draft.subject, html, draft.text, body)


async def _render(
    session: AsyncSession,
    settings: Settings,
    version_id: int | None,
    subject: str,
    html: str,
    text: str | None,
    body: RenderIn,
) -> RenderOut:
    from mailer.deliverability.headers import unsubscribe_mailto
    from mailer.template.compiler import compiled_off_loop
    from mailer.template.content import mail_headers  # on first use (validate)
    from mailer.template.render import RenderError, message_context

    email, contact = PREVIEW_EMAIL, None
    if body.email is not None:
        found = await contacts.get(session, normalise(body.email))
        if found is None:
            raise NotFound(f"no contact {normalise(body.email)}")
        email, contact = found[0].email, found[0]
    unsubscribe_url = preview_unsubscribe_url(settings)
    campaign = {"id": 0, "name": "preview"} if body.mail_class == "marketing" else None
    context = message_context(
        email, contact, body.data, unsubscribe_url, settings.postal_address, campaign
    )
    compiled = await compiled_off_loop(settings.templates_dir, version_id, subject, html, text)
    try:
        # in a thread: the sandbox bounds the render's time; the event loop stays free
        rendered = await asyncio.to_thread(compiled.render, context)
    except RenderError as exc:
        raise Invalid.at(["body", "data"], f"render failed: {exc}") from exc
    headers = mail_headers(
        body.mail_class,
        unsubscribe_url,
        unsubscribe_mailto(settings, "preview"),
    )
    return RenderOut(
        subject=rendered.subject, html=rendered.html, text=rendered.text, headers=headers
    )


def preview_unsubscribe_url(settings: Settings) -> str:
    """The link a preview or an accept-time check renders in place of a message's own."""
    return f"{settings.public_url.rstrip('/')}/unsubscribe/preview"
