"""The one check of a metrics scraper's token, for the API's /metrics and each worker's.

Kept apart from :mod:`mailer.metrics`: a worker checks tokens before it may import
prometheus-client (its multiprocess directory is chosen first)."""

from __future__ import annotations

import hmac


def carries(authorization: str | None, token: str) -> bool:
    """Whether an ``Authorization`` header is ``Bearer <token>`` (constant time)."""
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode(), token.encode()
    )
