from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import AuditRecord, Person, PersonToken, WebSession

SUBJECT_KIND = "person"  # web_sessions.subject_kind of a person's sessions


async def insert(session: AsyncSession, email: str, role: str) -> Person:
    person = Person(email=email, role=role)
    session.add(person)
    await session.flush()
    return person


async def get(session: AsyncSession, person_id: int, lock: bool = False) -> Person | None:
    statement = select(Person).where(Person.id == person_id)
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def by_email(session: AsyncSession, email: str) -> Person | None:
    return (await session.execute(select(Person).where(Person.email == email))).scalar_one_or_none()


async def page(session: AsyncSession, after: int, limit: int) -> list[Person]:
    found = await session.execute(
        select(Person).where(Person.id > after).order_by(Person.id).limit(limit)
    )
    return list(found.scalars())


async def set_password(session: AsyncSession, person_id: int, password_hash: str) -> None:
    await session.execute(
        update(Person)
        .where(Person.id == person_id)
        .values(password_hash=password_hash, password_changed_at=func.now())
    )


async def set_role(session: AsyncSession, person_id: int, role: str) -> None:
    await session.execute(update(Person).where(Person.id == person_id).values(role=role))


async def disable(session: AsyncSession, person_id: int) -> None:
    await session.execute(
        update(Person)
        .where(Person.id == person_id, Person.disabled_at.is_(None))
        .values(disabled_at=func.now())
    )


async def insert_token(
    session: AsyncSession, person_id: int, purpose: str, token_hash: str, expires_at: datetime
) -> None:
    # a new link of a purpose replaces the person's earlier unused ones
    await session.execute(
        update(PersonToken)
        .where(
            PersonToken.person_id == person_id,
            PersonToken.purpose == purpose,
            PersonToken.used_at.is_(None),
        )
        .values(used_at=func.now())
    )
    session.add(
        PersonToken(
            person_id=person_id, purpose=purpose, token_hash=token_hash, expires_at=expires_at
        )
    )
    await session.flush()


async def live_token(
    session: AsyncSession, purpose: str, token_hash: str, lock: bool = False
) -> PersonToken | None:
    statement = select(PersonToken).where(
        PersonToken.token_hash == token_hash,
        PersonToken.purpose == purpose,
        PersonToken.used_at.is_(None),
        PersonToken.expires_at > func.now(),
    )
    if lock:
        statement = statement.with_for_update()
    return (await session.execute(statement)).scalar_one_or_none()


async def use_token(session: AsyncSession, token_id: int) -> bool:
    """Mark a link used; False when it was used meanwhile (single use under concurrency)."""
    used = await session.execute(
        update(PersonToken)
        .where(PersonToken.id == token_id, PersonToken.used_at.is_(None))
        .values(used_at=func.now())
    )
    return bool(used.rowcount)  # type: ignore[attr-defined]


async def live_sessions(session: AsyncSession, person_id: int) -> list[WebSession]:
    found = await session.execute(
        select(WebSession)
        .where(
            WebSession.subject_kind == SUBJECT_KIND,
            WebSession.subject_id == person_id,
            WebSession.ended_at.is_(None),
            WebSession.expires_at > func.now(),
        )
        .order_by(WebSession.id.desc())
    )
    return list(found.scalars())


async def end_session_of(session: AsyncSession, person_id: int, session_id: int) -> int:
    """End one live session of this person (another person's is left alone)."""
    ended = await session.execute(
        update(WebSession)
        .where(
            WebSession.id == session_id,
            WebSession.subject_kind == SUBJECT_KIND,
            WebSession.subject_id == person_id,
            WebSession.ended_at.is_(None),
        )
        .values(ended_at=func.now())
    )
    return int(ended.rowcount)  # type: ignore[attr-defined]


# -- audit records ----------------------------------------------------------------------


async def insert_audit(
    session: AsyncSession,
    person_id: int | None,
    actor: str,
    action: str,
    subject_kind: str,
    subject_id: str,
    detail: dict[str, Any] | None,
) -> None:
    session.add(
        AuditRecord(
            person_id=person_id,
            actor=actor,
            action=action,
            subject_kind=subject_kind,
            subject_id=subject_id,
            detail=detail,
        )
    )
    await session.flush()


async def audit_of(
    session: AsyncSession, subject_kind: str, subject_id: str, limit: int = 50
) -> list[AuditRecord]:
    found = await session.execute(
        select(AuditRecord)
        .where(AuditRecord.subject_kind == subject_kind, AuditRecord.subject_id == subject_id)
        .order_by(AuditRecord.id.desc())
        .limit(limit)
    )
    return list(found.scalars())


async def audit_page(session: AsyncSession, before: int | None, limit: int) -> list[AuditRecord]:
    statement = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
    if before is not None:
        statement = statement.where(AuditRecord.id < before)
    return list((await session.execute(statement)).scalars())
