"""API keys and dashboard sessions: the SQL."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import ApiKey, WebSession


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


async def page(session: AsyncSession, after: int, limit: int) -> list[ApiKey]:
    """Keys by id, after ``after``: revoked ones too (their ``revoked_at`` says so)."""
    found = await session.execute(
        select(ApiKey).where(ApiKey.id > after).order_by(ApiKey.id).limit(limit)
    )
    return list(found.scalars())


async def revoke(session: AsyncSession, key_id: int) -> ApiKey | None:
    """Mark the key revoked (a revoked key keeps its first ``revoked_at``); None if unknown."""
    await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    found = await session.execute(
        select(ApiKey).where(ApiKey.id == key_id).execution_options(populate_existing=True)
    )
    return found.scalar_one_or_none()


# -- web sessions ----------------------------------------------------------------------

# sessions ended or expired this long ago are deleted when a new one starts
SESSION_KEPT_AFTER_END = timedelta(days=1)


async def insert_session(
    session: AsyncSession,
    *,
    token_hash: str,
    subject_kind: str,
    subject_id: int,
    expires_at: datetime,
) -> WebSession:
    await session.execute(
        delete(WebSession).where(
            or_(
                WebSession.expires_at < func.now() - SESSION_KEPT_AFTER_END,
                WebSession.ended_at < func.now() - SESSION_KEPT_AFTER_END,
            )
        )
    )
    row = WebSession(
        token_hash=token_hash,
        subject_kind=subject_kind,
        subject_id=subject_id,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row


async def live_session(session: AsyncSession, session_id: int) -> WebSession | None:
    found = await session.execute(
        select(WebSession).where(
            WebSession.id == session_id,
            WebSession.ended_at.is_(None),
            WebSession.expires_at > func.now(),
        )
    )
    return found.scalar_one_or_none()


async def end_sessions(
    session: AsyncSession,
    *,
    session_id: int | None = None,
    subject_kind: str | None = None,
    subject_id: int | None = None,
) -> int:
    """End one session (by id) or every live one of a subject; how many were ended."""
    statement = update(WebSession).where(WebSession.ended_at.is_(None))
    if session_id is not None:
        statement = statement.where(WebSession.id == session_id)
    else:
        statement = statement.where(
            WebSession.subject_kind == subject_kind, WebSession.subject_id == subject_id
        )
    ended = await session.execute(statement.values(ended_at=func.now()))
    return int(ended.rowcount)  # type: ignore[attr-defined]
