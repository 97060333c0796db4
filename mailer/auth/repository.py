from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import ApiKey


async def insert(
    session: AsyncSession, *, name: str, prefix: str, key_hash: str, scopes: list[str]
) -> ApiKey:
    key = ApiKey(name=name, prefix=prefix, key_hash=key_hash, scopes=scopes)
    session.add(key)
    await session.flush()
    return key


async def touch(session: AsyncSession, key_id: int, every_seconds: float) -> None:
    """Record that the key was used: at most one write per ``every_seconds`` per key (the
    guard in WHERE keeps concurrent requests from writing the row again)."""
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(
                ApiKey.last_used_at.is_(None),
                ApiKey.last_used_at < func.now() - timedelta(seconds=every_seconds),
            ),
        )
        .values(last_used_at=func.now())
    )


async def get_by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    return (
        await session.execute(select(ApiKey).where(ApiKey.prefix == prefix))
    ).scalar_one_or_none()
