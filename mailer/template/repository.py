"""Templates and versions: the SQL."""

from __future__ import annotations

from sqlalchemy import select, text
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


async def version_number(
    session: AsyncSession, template_id: int, number: int
) -> TemplateVersion | None:
    return (
        await session.execute(
            select(TemplateVersion).where(
                TemplateVersion.template_id == template_id, TemplateVersion.version == number
            )
        )
    ).scalar_one_or_none()


# what still needs a template: campaigns (they keep their version for their history) and
# messages not sent yet that render one of its versions
_TEMPLATE_USERS = text(
    """
    SELECT (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM campaigns
             WHERE template_id = :id) AS campaigns,
           (SELECT count(*) FROM messages m JOIN template_versions v
                ON v.id = m.template_version_id
             WHERE v.template_id = :id AND m.status IN ('queued', 'sending')) AS pending
    """
)


async def delete(session: AsyncSession, template_id: int) -> tuple[list[int], int]:
    """Delete a template and its versions unless something still needs it: then nothing,
    and the campaigns that use it and the number of messages waiting to render it."""
    row = (await session.execute(_TEMPLATE_USERS, {"id": template_id})).one()
    campaigns, pending = [int(i) for i in row.campaigns], int(row.pending)
    if not campaigns and not pending:
        await session.execute(text("DELETE FROM templates WHERE id = :id"), {"id": template_id})
    return campaigns, pending
