"""People: invitations, passwords, sign-in, sessions, roles and the audit records.

An invitation or a password reset is a one-time link (``person_tokens``: the SHA-256 of
a random token, an expiry, ``used_at``). Redeeming it sets the password and ends every
session of the person; so does changing the password. Links go out as transactional mail
through the product's own send path (``mailer.message.service.accept``) with a built-in
template, when ``MAILER_CONSOLE_MAIL_FROM`` names a sender.
"""

from __future__ import annotations

import hashlib
import secrets as random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.auth import sessions
from mailer.config import Settings
from mailer.contact.addresses import valid_address
from mailer.errors import Conflict, Invalid, NotFound
from mailer.message import service as messages
from mailer.message.schemas import MessageIn
from mailer.models import ROLES, AuditRecord, Person, WebSession
from mailer.pagination import Page
from mailer.people import passwords, repository
from mailer.people.repository import SUBJECT_KIND

LINK_PATHS = {"invitation": "/console/invitation/", "reset": "/console/reset/"}
SUBJECTS = {
    "invitation": "You are invited to the mailer console",
    "reset": "Reset your mailer console password",
}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_role(role: str, path: str = "role") -> str:
    if role not in ROLES:
        raise Invalid.at(["body", path], f"unknown role; one of {', '.join(ROLES)}")
    return role


def link(settings: Settings, purpose: str, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}{LINK_PATHS[purpose]}{token}"


@lru_cache
def _mail_html(templates_dir: Path, purpose: str) -> str:
    return (templates_dir / "console" / "mail" / f"{purpose}.html").read_text()


async def _issue(
    session: AsyncSession,
    settings: Settings,
    redis: ArqRedis | None,
    person: Person,
    purpose: str,
) -> str:
    """A new one-time link of ``purpose`` for ``person``, mailed (after the commit) when a
    sender is configured; the link."""
    token = random.token_urlsafe(32)
    lifetime = (
        timedelta(hours=settings.invitation_hours)
        if purpose == "invitation"
        else timedelta(minutes=settings.password_reset_minutes)
    )
    await repository.insert_token(
        session, person.id, purpose, _hash(token), datetime.now(UTC) + lifetime
    )
    url = link(settings, purpose, token)
    if settings.console_mail_from and redis is not None:
        body = MessageIn(
            to=person.email,
            from_address=settings.console_mail_from,
            subject=SUBJECTS[purpose],
            html=_mail_html(settings.templates_dir, purpose),
            data={"link": url, "role": person.role, "hours": lifetime.total_seconds() / 3600},
        )
        (answer,) = await messages.accept(
            session, settings, redis, None, [messages.Request(body, None, [purpose])]
        )
        if isinstance(answer, Exception):
            raise answer
    return url


async def create(
    session: AsyncSession,
    settings: Settings,
    redis: ArqRedis | None,
    email: str,
    role: str,
) -> tuple[Person, str]:
    """A new person of ``role``, without a password; their invitation link."""
    address = valid_address(email, ["body", "email"])
    check_role(role)
    if await repository.by_email(session, address) is not None:
        raise Conflict(f"{address} has an account already")
    person = await repository.insert(session, address, role)
    return person, await _issue(session, settings, redis, person, "invitation")


async def reinvite(
    session: AsyncSession, settings: Settings, redis: ArqRedis | None, person_id: int
) -> str:
    person = await get(session, person_id)
    return await _issue(session, settings, redis, person, "invitation")


async def get(session: AsyncSession, person_id: int) -> Person:
    person = await repository.get(session, person_id)
    if person is None:
        raise NotFound(f"no person {person_id}")
    return person


async def page(session: AsyncSession, page: Page[int]) -> tuple[list[Person], str | None]:
    rows = await repository.page(session, page.last or 0, page.fetch)
    return page.cut(rows, key=lambda p: p.id)


async def token_person(session: AsyncSession, purpose: str, token: str) -> Person:
    """The person of a live link (GET of its page); a 404 for a used or expired one."""
    found = await repository.live_token(session, purpose, _hash(token))
    person = None if found is None else await repository.get(session, found.person_id)
    if person is None or person.disabled_at is not None:
        raise NotFound("this link is not valid: used already, expired or unknown")
    return person


async def redeem(session: AsyncSession, purpose: str, token: str, password: str) -> Person:
    """Set the password through a one-time link: the link is used up and every session of
    the person ends."""
    passwords.check_new(password)
    found = await repository.live_token(session, purpose, _hash(token), lock=True)
    if found is None or not await repository.use_token(session, found.id):
        raise NotFound("this link is not valid: used already, expired or unknown")
    person = await repository.get(session, found.person_id, lock=True)
    if person is None or person.disabled_at is not None:
        raise NotFound("this link is not valid: used already, expired or unknown")
    await repository.set_password(session, person.id, passwords.hash_password(password))
    await sessions.end_all(session, SUBJECT_KIND, person.id)
    return person


async def request_reset(
    session: AsyncSession, settings: Settings, redis: ArqRedis | None, email: str
) -> str | None:
    """A reset link for an active account with this address (mailed), else None; the
    caller answers the same either way."""
    person = await repository.by_email(session, email.strip().lower())
    if person is None or person.disabled_at is not None:
        return None
    return await _issue(session, settings, redis, person, "reset")


async def authenticate(session: AsyncSession, email: str, password: str) -> Person | None:
    """The active person with this address and password, else None (the same work either
    way: an unknown address is verified against a dummy hash)."""
    person = await repository.by_email(session, email.strip().lower()[:320])
    stored = None if person is None or person.disabled_at is not None else person.password_hash
    if not passwords.verify(stored, password) or person is None or stored is None:
        return None
    if passwords.needs_rehash(stored):
        await repository.set_password(session, person.id, passwords.hash_password(password))
    return person


async def change_password(session: AsyncSession, person: Person, current: str, new: str) -> None:
    """A new password, the current one given; every session of the person ends (the
    caller starts a fresh one for the browser that asked)."""
    if not passwords.verify(person.password_hash, current):
        raise Invalid.at(["body", "current"], "the current password is not right")
    passwords.check_new(new, "new")
    await repository.set_password(session, person.id, passwords.hash_password(new))
    await sessions.end_all(session, SUBJECT_KIND, person.id)


async def set_role(session: AsyncSession, person_id: int, role: str) -> Person:
    check_role(role)
    person = await get(session, person_id)
    await repository.set_role(session, person_id, role)
    person.role = role
    return person


async def disable(session: AsyncSession, person_id: int) -> Person:
    """No more sign-ins; every session ends."""
    person = await get(session, person_id)
    await repository.disable(session, person_id)
    await sessions.end_all(session, SUBJECT_KIND, person_id)
    return person


async def live_sessions(session: AsyncSession, person_id: int) -> list[WebSession]:
    return await repository.live_sessions(session, person_id)


async def end_session(session: AsyncSession, person_id: int, session_id: int) -> None:
    if not await repository.end_session_of(session, person_id, session_id):
        raise NotFound(f"no live session {session_id}")


async def end_sessions(session: AsyncSession, person_id: int) -> int:
    return await sessions.end_all(session, SUBJECT_KIND, person_id)


# -- who did it ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who makes a change: a person of the console, or a command line."""

    person_id: int | None
    name: str


async def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    subject_kind: str,
    subject_id: object,
    detail: dict[str, Any] | None = None,
) -> None:
    """Record a change in the transaction that makes it."""
    await repository.insert_audit(
        session, actor.person_id, actor.name, action, subject_kind, str(subject_id), detail
    )


async def history(
    session: AsyncSession, subject_kind: str, subject_id: object
) -> list[AuditRecord]:
    return await repository.audit_of(session, subject_kind, str(subject_id))


async def audit_page(
    session: AsyncSession, page: Page[int]
) -> tuple[list[AuditRecord], str | None]:
    return page.cut(await repository.audit_page(session, page.last, page.fetch), key=lambda r: r.id)
