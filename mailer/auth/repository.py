from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import ApiKey


async def insert(
    session: AsyncSession, *, name: str, prefix: str, key_hash: str, scopes: list[str]
) -> ApiKey:
    key = ApiKey(name=name, prefix=prefix, key_hash=key_hash, scopes=scopes)
    session.add(key)
    await session.flush()
    return key


async def get_by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    return (
        await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))
    ).scalar_one_or_none()
