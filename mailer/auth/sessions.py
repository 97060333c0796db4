"""Browser sessions kept on the server (``web_sessions``), for the dashboard today and for
people accounts next: a session belongs to a subject (kind + id), ends at logout, when its
subject is revoked, or at its expiry.

The cookie is ``s1.<id>.<token>.<mac>``: the row's id, a random token (only its SHA-256
is stored) and an HMAC of both under the signing key (``mailer.secrets``), so a forged or
altered cookie is refused before any database read, and a cookie signed with a key that is
no longer listed is refused too. CSRF tokens are HMACs of the session's token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets as random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.ext.asyncio import AsyncSession

from mailer import secrets
from mailer.auth import repository

if TYPE_CHECKING:
    from mailer.config import Settings
    from mailer.models import WebSession

VERSION = "s1"
MAX_COOKIE_LENGTH = 300


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def seal(settings: Settings, session_id: int, token: str) -> str:
    payload = f"{VERSION}.{session_id}.{token}"
    return f"{payload}.{secrets.sign(settings, 'session', payload)}"


def unseal(settings: Settings, cookie: str | None) -> tuple[int, str] | None:
    """(session id, token) of a cookie signed by a verifying key, else None."""
    if not cookie or len(cookie) > MAX_COOKIE_LENGTH:
        return None
    payload, _, mac = cookie.rpartition(".")
    if not secrets.verify(settings, "session", payload, mac):
        return None
    version, _, rest = payload.partition(".")
    session_id, _, token = rest.partition(".")
    if version != VERSION or not session_id.isdigit() or len(session_id) > 18 or not token:
        return None
    return int(session_id), token


async def start(
    session: AsyncSession, settings: Settings, subject_kind: str, subject_id: int
) -> str:
    """A new session of the subject; its cookie value."""
    token = random.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(hours=settings.dashboard_session_hours)
    row = await repository.insert_session(
        session,
        token_hash=_hash(token),
        subject_kind=subject_kind,
        subject_id=subject_id,
        expires_at=expires_at,
    )
    return seal(settings, row.id, token)


async def find(
    session: AsyncSession, settings: Settings, cookie: str | None
) -> tuple[WebSession, str] | None:
    """The live session of a cookie and its token, else None."""
    found = unseal(settings, cookie)
    if found is None:
        return None
    session_id, token = found
    row = await repository.live_session(session, session_id)
    if row is None or not hmac.compare_digest(row.token_hash, _hash(token)):
        return None
    return row, token


async def end(session: AsyncSession, session_id: int) -> None:
    await repository.end_sessions(session, session_id=session_id)


async def end_all(session: AsyncSession, subject_kind: str, subject_id: int) -> int:
    """End every live session of a subject; how many."""
    return await repository.end_sessions(session, subject_kind=subject_kind, subject_id=subject_id)


def csrf_token(settings: Settings, token: str) -> str:
    """The CSRF token of the forms of the session whose token is ``token``."""
    return secrets.sign(settings, "csrf", token)


def csrf_ok(settings: Settings, token: str, given: str) -> bool:
    return secrets.verify(settings, "csrf", token, given)
