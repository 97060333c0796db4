"""Password hashing: argon2id (argon2-cffi's defaults, RFC 9106's second recommendation),
rehashed on sign-in when the parameters change."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailer.errors import Invalid

MIN_LENGTH = 12
MAX_LENGTH = 256  # argon2 takes any length; a bound keeps one sign-in's cost bounded


@lru_cache
def _hasher() -> PasswordHasher:
    return PasswordHasher()  # type id: argon2id


@lru_cache
def _dummy() -> str:
    # verified against when the account does not exist: the answer takes as long
    return _hasher().hash("no account has this password")


def check_new(password: str, path: str = "password") -> str:
    if len(password) < MIN_LENGTH:
        raise Invalid.at(["body", path], f"a password has at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise Invalid.at(["body", path], f"a password has at most {MAX_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Whether ``password`` matches ``stored`` (None: no password yet; costs the same)."""
    try:
        return _hasher().verify(stored or _dummy(), password[:MAX_LENGTH]) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher().check_needs_rehash(stored)
