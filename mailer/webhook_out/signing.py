"""Standard Webhooks signatures (https://www.standardwebhooks.com/): any of its published
verifiers accepts what is signed here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from functools import lru_cache

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """``whsec_`` + base64 of 32 random bytes."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@lru_cache(maxsize=1024)
def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(PREFIX))


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """``v1,`` + base64 of HMAC-SHA256(key, ``id.timestamp.body``)."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(webhook_id: str, timestamp: int, body: bytes, keys: list[str]) -> dict[str, str]:
    """The request headers; every secret in ``keys`` signs (a rotation's overlap: the
    receiver accepts any one signature it can check)."""
    return {
        "content-type": "application/json",
        "user-agent": "mailer-webhooks/1",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(k, webhook_id, timestamp, body) for k in keys),
    }
