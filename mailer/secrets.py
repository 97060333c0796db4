"""The secret key rule, in one place: which keys sign, which verify, and which are refused.

Everything the product signs (dashboard sessions and their CSRF tokens, unsubscribe tokens,
the HMAC that records an erasure) uses :func:`signing_key` and accepts any of
:func:`verifying_keys`. ``MAILER_SECRET_KEYS`` (comma-separated, newest first) rotates:
the first key signs, every listed key verifies; without it ``MAILER_SECRET_KEY`` is the
only key. The API, every worker and every CLI command that signs or hands out credentials
calls :func:`require` at start-up, so a published default, a placeholder or a short key
never reaches production (``mailer dev`` makes a random key per data directory).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as _random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mailer.config import Settings

MIN_BYTES = 32
HOW_TO_MAKE_ONE = (
    "make one with `mailer secret` "
    "(or: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
)

# published values: the old built-in default, docker/.env.example's, and the usual ones
KNOWN_DEFAULTS = frozenset(
    {
        "dev-secret-change-me",
        "change-me",
        "changeme",
        "change_me",
        "secret",
        "secret-key",
        "secret_key",
        "secretkey",
        "mysecret",
        "my-secret-key",
        "supersecret",
        "password",
        "test-secret",
        "wheel-check",
        "bench",
        "development",
        "dev",
        "default",
    }
)
# words that mark a value someone meant to replace, wherever they appear in it
_PLACEHOLDER = re.compile(
    r"change[-_ ]?me|changeit|replace[-_ ]?me|your[-_ ]?(secret|key)|placeholder|example|"
    r"not[-_ ]?secret|insecure|<[^>]*>|\$\{",
    re.IGNORECASE,
)
MIN_DISTINCT_CHARACTERS = 10  # "aaaa…" or "0123012301230123…" is long but guessable


class WeakSecret(Exception):
    """The configured secret key must not be used; ``str()`` is the one line to show."""


def new_key() -> str:
    """A fresh random key (48 random bytes, URL-safe: 64 characters)."""
    return _random.token_urlsafe(48)


def weakness(key: str) -> str | None:
    """Why ``key`` must not sign anything, or None when it may."""
    stripped = key.strip()
    if not stripped:
        return "is not set"
    if stripped.lower() in KNOWN_DEFAULTS:
        return "is a published default"
    if _PLACEHOLDER.search(stripped):
        return "is a placeholder"
    if len(key.encode()) < MIN_BYTES:
        return f"is shorter than {MIN_BYTES} bytes"
    if len(set(key)) < MIN_DISTINCT_CHARACTERS:
        return "is not random (too few distinct characters)"
    return None


def verifying_keys(settings: Settings) -> tuple[str, ...]:
    """Every key a signature may have been made with, newest first."""
    return tuple(settings.secret_keys) or (settings.secret_key,)


def signing_key(settings: Settings) -> str:
    """The key new signatures are made with: the first of :func:`verifying_keys`."""
    return verifying_keys(settings)[0]


def problem(settings: Settings) -> str | None:
    """One line saying what is wrong with the configured keys and how to fix it, or None."""
    if settings.secret_keys:
        for position, key in enumerate(settings.secret_keys, 1):
            why = weakness(key)
            if why is not None:
                return f"MAILER_SECRET_KEYS: key {position} {why}; {HOW_TO_MAKE_ONE}"
        if settings.secret_key and settings.secret_key not in settings.secret_keys:
            # a key the operator believes in but that signs and verifies nothing
            return (
                "MAILER_SECRET_KEY is set but is not one of MAILER_SECRET_KEYS, which "
                "replaces it: list it there (to keep verifying with it) or unset it"
            )
        return None
    why = weakness(settings.secret_key)
    if why is not None:
        return f"MAILER_SECRET_KEY {why}; {HOW_TO_MAKE_ONE}"
    return None


def require(settings: Settings) -> None:
    """Raise :class:`WeakSecret` unless every configured key may sign."""
    why = problem(settings)
    if why is not None:
        raise WeakSecret(why)


def _mac(key: str, purpose: str, message: str) -> str:
    return hmac.new(key.encode(), f"{purpose}\x00{message}".encode(), hashlib.sha256).hexdigest()


def sign(settings: Settings, purpose: str, message: str) -> str:
    """HMAC-SHA256 (hex) of ``message`` for ``purpose`` under the signing key."""
    return _mac(signing_key(settings), purpose, message)


def verify(settings: Settings, purpose: str, message: str, mac: str) -> bool:
    """Whether ``mac`` is :func:`sign`'s answer under any verifying key (constant time:
    every key is tried)."""
    matched = False
    for key in verifying_keys(settings):
        matched |= hmac.compare_digest(mac.encode(), _mac(key, purpose, message).encode())
    return matched
