"""Unsubscribe tokens: the message id and an HMAC of it; no personal data, not forgeable."""

from __future__ import annotations

import base64
import hashlib
import hmac
from functools import lru_cache


@lru_cache(maxsize=4)
def _keyed(secret: str) -> hmac.HMAC:
    # the key's inner and outer pads, hashed once: each token copies them (every message
    # of a campaign gets a token)
    return hmac.new(secret.encode(), b"unsubscribe:", hashlib.sha256)


def _mac(secret: str, message_id: int) -> str:
    digest = _keyed(secret).copy()
    digest.update(str(message_id).encode())
    return base64.urlsafe_b64encode(digest.digest()[:18]).decode().rstrip("=")


def make_token(secret: str, message_id: int) -> str:
    return f"{message_id:x}.{_mac(secret, message_id)}"


def read_token(secret: str, token: str) -> int | None:
    """The message id of a genuine token, or None."""
    head, sep, mac = token.partition(".")
    if not sep or len(head) > 16:
        return None
    try:
        message_id = int(head, 16)
    except ValueError:
        return None
    if not hmac.compare_digest(mac, _mac(secret, message_id)):
        return None
    return message_id
