from __future__ import annotations

from fastapi import APIRouter, Request

from mailer.auth.dependencies import RequireScope, Session
from mailer.template import service
from mailer.template.schemas import TemplateIn, TemplateOut, TemplateVersionIn
from mailer.types import Id

router = APIRouter(tags=["templates"], dependencies=[RequireScope.depends("campaigns")])


@router.post("/templates", status_code=201, response_model=TemplateOut)
async def create_template(body: TemplateIn, session: Session, request: Request) -> TemplateOut:
    return await service.create(session, request.app.state.settings.templates_dir, body)


@router.put("/templates/{template_id}", response_model=TemplateOut)
async def update_template(
    template_id: Id, body: TemplateVersionIn, session: Session, request: Request
) -> TemplateOut:
    return await service.new_version(
        session, request.app.state.settings.templates_dir, template_id, body
    )


@router.get("/templates/{template_id}", response_model=TemplateOut)
async def get_template(template_id: Id, session: Session) -> TemplateOut:
    return await service.get(session, template_id)
