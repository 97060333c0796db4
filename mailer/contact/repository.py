from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import Contact, Suppression

# xmax = 0 tells an inserted row from an updated one in the same statement
_UPSERT = text(
    """
    INSERT INTO contacts (email, attributes, tags)
    VALUES (:email, CAST(:attributes AS jsonb), :tags)
    ON CONFLICT (email) DO UPDATE
       SET attributes = EXCLUDED.attributes, tags = EXCLUDED.tags, updated_at = now()
    RETURNING id, (xmax = 0) AS inserted
    """
)


async def upsert(
    session: AsyncSession, email: str, attributes: dict[str, Any], tags: list[str]
) -> tuple[int, bool]:
    import json

    row = (
        await session.execute(
            _UPSERT, {"email": email, "attributes": json.dumps(attributes), "tags": tags}
        )
    ).one()
    return int(row.id), bool(row.inserted)


async def get(session: AsyncSession, email: str) -> tuple[Contact, bool] | None:
    suppressed = select(Suppression.email).where(Suppression.email == Contact.email).exists()
    row = (
        await session.execute(select(Contact, suppressed).where(Contact.email == email))
    ).one_or_none()
    return None if row is None else (row[0], bool(row[1]))
