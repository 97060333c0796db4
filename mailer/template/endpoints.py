"""Templates over HTTP: create, list, read, new versions (PUT), render, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from mailer.auth.dependencies import RequireScope, Session
from mailer.pagination import IdPage
from mailer.template import service
from mailer.template.schemas import (
    RenderIn,
    RenderOut,
    TemplateDetail,
    TemplateIn,
    TemplateOut,
    TemplatePage,
    TemplateVersionIn,
)
from mailer.types import Id

router = APIRouter(tags=["templates"], dependencies=[RequireScope.depends("campaigns")])


@router.post("/templates", status_code=201, response_model=TemplateOut)
async def create_template(body: TemplateIn, session: Session, request: Request) -> TemplateOut:
    return await service.create(session, request.app.state.settings.templates_dir, body)


@router.get("/templates", response_model=TemplatePage)
async def list_templates(
    session: Session,
    page: IdPage,
) -> TemplatePage:
    return await service.page(session, page)


@router.put("/templates/{template_id}", response_model=TemplateOut)
async def update_template(
    template_id: Id, body: TemplateVersionIn, session: Session, request: Request
) -> TemplateOut:
    return await service.new_version(
        session, request.app.state.settings.templates_dir, template_id, body
    )


@router.get("/templates/{template_id}", response_model=TemplateDetail)
async def get_template(template_id: Id, session: Session) -> TemplateDetail:
    return await service.get(session, template_id)


@router.post("/templates/{template_id}/render", response_model=RenderOut)
async def render_template(
    template_id: Id, body: RenderIn, session: Session, request: Request
) -> RenderOut:
    return await service.render(session, request.app.state.settings, template_id, body)


@router.delete("/templates/{template_id}", status_code=204)
async def delete_template(template_id: Id, session: Session) -> Response:
    """Delete a template and all its versions; 409 while a campaign uses it (naming the
    campaigns) or messages wait to be rendered from it."""
    await service.delete(session, template_id)
    return Response(status_code=204)
