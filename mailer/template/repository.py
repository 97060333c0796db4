from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import Template, TemplateVersion


async def insert(session: AsyncSession, name: str) -> Template:
    template = Template(name=name, current_version=1)
    session.add(template)
    await session.flush()
    return template


async def add_version(
    session: AsyncSession,
    template_id: int,
    version: int,
    subject: str,
    html: str,
    text: str | None,
) -> TemplateVersion:
    row = TemplateVersion(
        template_id=template_id, version=version, subject=subject, html=html, text=text
    )
    session.add(row)
    await session.flush()
    return row


async def get_for_update(session: AsyncSession, template_id: int) -> Template | None:
    return (
        await session.execute(select(Template).where(Template.id == template_id).with_for_update())
    ).scalar_one_or_none()


async def current(
    session: AsyncSession, template_id: int
) -> tuple[Template, TemplateVersion] | None:
    row = (
        await session.execute(
            select(Template, TemplateVersion)
            .join(TemplateVersion, TemplateVersion.template_id == Template.id)
            .where(Template.id == template_id, TemplateVersion.version == Template.current_version)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])
