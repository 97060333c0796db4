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
    format: str = "html",
    source: str | None = None,
) -> TemplateVersion:
    row = TemplateVersion(
        template_id=template_id,
        version=version,
        subject=subject,
        html=html,
        text=text,
        format=format,
        source=source,
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


async def versions(session: AsyncSession, template_id: int) -> list[TemplateVersion]:
    """Every version of a template, oldest first (the content columns are not needed)."""
    rows = await session.execute(
        select(TemplateVersion)
        .where(TemplateVersion.template_id == template_id)
        .order_by(TemplateVersion.version)
    )
    return list(rows.scalars())


async def page(session: AsyncSession, after: int, limit: int) -> list[Template]:
    """Templates by id after the cursor (keyset pagination)."""
    rows = await session.execute(
        select(Template).where(Template.id > after).order_by(Template.id).limit(limit)
    )
    return list(rows.scalars())


async def version_by_id(session: AsyncSession, version_id: int) -> TemplateVersion | None:
    return await session.get(TemplateVersion, version_id)
