"""API keys: created once, shown once, stored as SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from mailer.auth import repository
from mailer.errors import Invalid
from mailer.models import SCOPES, ApiKey

KEY_PREFIX = "mk_"
# ApiKey.last_used_at is written at most this often per key: not one write per request
LAST_USED_EVERY = timedelta(minutes=1)


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(raw: str) -> tuple[str, str] | None:
    """``mk_<prefix>_<secret>`` → (prefix, whole key); None when it is not of that shape."""
    if not raw.startswith(KEY_PREFIX):
        return None
    prefix, sep, rest = raw[len(KEY_PREFIX) :].partition("_")
    if not sep or not prefix or not rest or len(prefix) > 16:
        return None
    return prefix, raw


async def create_key(session: AsyncSession, name: str, scopes: list[str]) -> tuple[ApiKey, str]:
    """Create a key; the plain key is returned once and never stored."""
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise Invalid.at("scopes", f"scopes must be some of {', '.join(SCOPES)}")
    prefix = secrets.token_hex(6)
    raw = f"{KEY_PREFIX}{prefix}_{secrets.token_urlsafe(32)}"
    key = await repository.insert(
        session, name=name, prefix=prefix, key_hash=hash_key(raw), scopes=sorted(set(scopes))
    )
    return key, raw


async def authenticate(session: AsyncSession, raw: str) -> ApiKey | None:
    """The live key for ``raw``, or None; a live key's ``last_used_at`` is brought up to
    date (within :data:`LAST_USED_EVERY`) in the caller's transaction."""
    parts = split_key(raw)
    if parts is None:
        # still spend the same work so that timing says nothing about the shape
        hmac.compare_digest(hash_key(raw), hash_key(""))
        return None
    key = await repository.get_by_prefix(session, parts[0])
    expected = key.key_hash if key is not None else hash_key("")
    if not hmac.compare_digest(expected, hash_key(raw)) or key is None:
        return None
    if key.revoked_at is not None:
        return None
    now = datetime.now(UTC)
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_EVERY:
        await repository.touch(session, key.id, LAST_USED_EVERY.total_seconds())
    return key


def allows(key: ApiKey, scope: str) -> bool:
    return "admin" in key.scopes or scope in key.scopes
