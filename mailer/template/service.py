"""Templates: versioned, syntax-checked on save, rendered in the sandbox."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from mailer.errors import Invalid, NotFound
from mailer.models import Template, TemplateVersion
from mailer.template import repository
from mailer.template.render import TemplateSyntaxError, check_syntax
from mailer.template.schemas import TemplateIn, TemplateOut, TemplateVersionIn


def validate(templates_dir: Path, subject: str, html: str, text: str | None) -> None:
    """A Jinja syntax error is a 422 naming the field and the line."""
    for field, source in (("subject", subject), ("html", html), ("text", text)):
        if source is None:
            continue
        try:
            check_syntax(templates_dir, field, source)
        except TemplateSyntaxError as exc:
            where = field if exc.name in (None, field) else f"{field} (in {exc.name})"
            message = f"{where}: line {exc.lineno}: {exc.message}"
            raise Invalid(message, [{"path": ["body", field], "line": exc.lineno,
                                     "message": exc.message or "syntax error"}]) from exc
        except Exception as exc:  # missing layout and similar load errors
            raise Invalid.at(["body", field], f"{field}: {exc}") from exc


def _out(template: Template, version: TemplateVersion) -> TemplateOut:
    return TemplateOut(id=template.id, name=template.name, version=version.version,
                       subject=version.subject, html=version.html, text=version.text)


async def create(session: AsyncSession, templates_dir: Path, body: TemplateIn) -> TemplateOut:
    validate(templates_dir, body.subject, body.html, body.text)
    template = await repository.insert(session, body.name)
    version = await repository.add_version(session, template.id, 1, body.subject, body.html,
                                           body.text)
    return _out(template, version)


async def new_version(
    session: AsyncSession, templates_dir: Path, template_id: int, body: TemplateVersionIn
) -> TemplateOut:
    """A new version; campaigns keep the version they were created with."""
    validate(templates_dir, body.subject, body.html, body.text)
    template = await repository.get_for_update(session, template_id)
    if template is None:
        raise NotFound(f"no template {template_id}")
    template.current_version += 1
    if body.name:
        template.name = body.name
    version = await repository.add_version(session, template.id, template.current_version,
                                           body.subject, body.html, body.text)
    return _out(template, version)


async def get(session: AsyncSession, template_id: int) -> TemplateOut:
    found = await repository.current(session, template_id)
    if found is None:
        raise NotFound(f"no template {template_id}")
    return _out(*found)


async def current_version(session: AsyncSession, template_id: int) -> TemplateVersion:
    found = await repository.current(session, template_id)
    if found is None:
        raise NotFound(f"no template {template_id}")
    return found[1]
