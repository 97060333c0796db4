"""API keys: created once, shown once, stored as SHA-256, compared in constant time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.auth import repository, sessions
from mailer.auth.schemas import ApiKeyOut, ApiKeyPage
from mailer.errors import Invalid, NotFound
from mailer.models import SCOPES, ApiKey
from mailer.pagination import Page

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


class KeyCache:
    """Keys authenticated in the last ``ttl`` seconds, for the hot POST /v1/messages path.

    A hit costs no round trip. The honest price: a key revoked in the database keeps
    working there for at most ``ttl`` seconds in each API process (every other route looks
    the key up per request). Entries are found by the key's SHA-256, never by the secret,
    and only live keys are kept: an unknown or revoked key is looked up every time.
    ``last_used_at`` stays within :data:`LAST_USED_EVERY` + ``ttl`` of the truth.
    """

    MAX_ENTRIES = 1024

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], ttl: float) -> None:
        self.sessionmaker = sessionmaker
        self.ttl = ttl
        self._keys: dict[str, tuple[float, ApiKey]] = {}
        self._lookups: dict[str, asyncio.Future[ApiKey | None]] = {}

    async def authenticate(self, raw: str) -> ApiKey | None:
        digest = hash_key(raw)
        hit = self._keys.get(digest)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        # one lookup per key at a time: the requests that find the entry expired together
        # share it instead of each taking a connection
        lookup = self._lookups.get(digest)
        if lookup is None:
            lookup = asyncio.ensure_future(self._lookup(raw, digest))
            self._lookups[digest] = lookup
            lookup.add_done_callback(lambda _: self._lookups.pop(digest, None))
        return await asyncio.shield(lookup)

    async def _lookup(self, raw: str, digest: str) -> ApiKey | None:
        # its own connection in autocommit, as ``RequireScope`` looks a key up
        async with self.sessionmaker() as session:
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            key = await authenticate(session, raw)
        if key is None:
            self._keys.pop(digest, None)
        elif self.ttl > 0:
            if len(self._keys) >= self.MAX_ENTRIES:
                self._keys.clear()
            self._keys[digest] = (time.monotonic() + self.ttl, key)
        return key


def key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=list(key.scopes),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


async def page(session: AsyncSession, page: Page[int]) -> ApiKeyPage:
    """Every key (revoked ones too), by id, a page at a time; never the keys themselves."""
    rows, next_cursor = page.cut(
        await repository.page(session, page.last or 0, page.fetch), key=lambda k: k.id
    )
    return ApiKeyPage(items=[key_out(k) for k in rows], next_cursor=next_cursor)


async def revoke(session: AsyncSession, key_id: int) -> tuple[ApiKey, int]:
    """Revoke a key (again: a no-op) and end its browser sessions; (the key, sessions
    ended). The key is refused at once everywhere but ``POST /v1/messages``, which keeps
    an authenticated key for ``MAILER_API_KEY_CACHE_SECONDS`` per API process."""
    key = await repository.revoke(session, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    ended = await sessions.end_all(session, "api_key", key_id)
    return key, ended
