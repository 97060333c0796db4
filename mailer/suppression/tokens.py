"""Unsubscribe tokens: the message id and an HMAC of it; no personal data, not forgeable.

Made with the signing key, read with every verifying key (``mailer.secrets``): a token
stays valid across a key rotation while its key is still listed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from functools import lru_cache


@lru_cache(maxsize=8)
def _keyed(secret: str) -> hmac.HMAC:
    # the key's inner and outer pads, hashed once: each token copies them (every message
    # of a campaign gets a token)
    return hmac.new(secret.encode(), b"unsubscribe:", hashlib.sha256)


def _mac(secret: str, message_id: int) -> str:
    digest = _keyed(secret).copy()
    digest.update(str(message_id).encode())
    return base64.urlsafe_b64encode(digest.digest()[:18]).decode().rstrip("=")


def make_token(secret: str, message_id: int) -> str:
    """The token of ``message_id``, signed with ``secret`` (the signing key)."""
    return f"{message_id:x}.{_mac(secret, message_id)}"


def read_token(keys: Sequence[str], token: str) -> int | None:
    """The message id of a token genuine under any of ``keys``, or None."""
    if isinstance(keys, str):  # one key, not its characters
        keys = (keys,)
    head, sep, mac = token.partition(".")
    if not sep or len(head) > 16:
        return None
    try:
        message_id = int(head, 16)
    except ValueError:
        return None
    # every key is tried, so the time taken does not say which one matched
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(mac, _mac(key, message_id))
    return message_id if matched else None
