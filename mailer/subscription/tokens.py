"""Signed tokens of the public subscription pages: a form's (when it was shown), a double
opt-in link's (which confirmation) and the preference centre's (which contact).

Each is its payload and an HMAC of it for its purpose (``mailer.secrets``): no personal
data, not forgeable, valid across a key rotation while the key is still listed. What a
token may do beyond that (single use, expiry) is kept in the database.
"""

from __future__ import annotations

from mailer.config import Settings
from mailer.secrets import sign, verify, verifying_keys
from mailer.suppression.tokens import read_token


def _make(settings: Settings, purpose: str, payload: str) -> str:
    return f"{payload}.{sign(settings, purpose, payload)}"


def _read(settings: Settings, purpose: str, token: str) -> str | None:
    payload, sep, mac = token.rpartition(".")
    if not sep or len(token) > 200:
        return None
    return payload if verify(settings, purpose, payload, mac) else None


def form_token(settings: Settings, form_id: int, shown_at: float) -> str:
    return _make(settings, "form", f"{form_id:x}-{int(shown_at * 1000):x}")


def read_form_token(settings: Settings, token: str, form_id: int) -> float | None:
    """When the form was shown (epoch seconds), for a genuine token of this form."""
    payload = _read(settings, "form", token)
    if payload is None:
        return None
    head, _, at = payload.partition("-")
    try:
        return int(at, 16) / 1000 if int(head, 16) == form_id else None
    except ValueError:
        return None


def confirm_token(settings: Settings, confirmation_id: int) -> str:
    return _make(settings, "confirm", f"{confirmation_id:x}")


def read_confirm_token(settings: Settings, token: str) -> int | None:
    payload = _read(settings, "confirm", token)
    return _hex(payload)


def preferences_token(settings: Settings, contact_id: int) -> str:
    return _make(settings, "preferences", f"c{contact_id:x}")


def read_preferences_token(settings: Settings, token: str) -> tuple[str, int] | None:
    """("contact", id) for a preference centre token; ("message", id) for a marketing
    message's unsubscribe token (its preference link carries that one)."""
    payload = _read(settings, "preferences", token)
    if payload is not None and payload.startswith("c"):
        found = _hex(payload[1:])
        return None if found is None else ("contact", found)
    message_id = read_token(verifying_keys(settings), token)
    return None if message_id is None else ("message", message_id)


def _hex(payload: str | None) -> int | None:
    if payload is None or not payload or len(payload) > 16:
        return None
    try:
        return int(payload, 16)
    except ValueError:
        return None
