"""Engagement jobs (arq): the MX look-ups that group custom domains into providers."""

from __future__ import annotations

from typing import Any

import structlog

from mailer.engagement import mx
from mailer.resolver import resolver

log = structlog.get_logger(__name__)


async def refresh_domain_mx(ctx: dict[str, Any]) -> int:
    """Look up the MX of the recent recipient domains that are due (periodic; safe to run
    twice: each answer replaces the last); how many were looked up."""
    found = await mx.refresh(ctx["sessionmaker"], resolver(ctx["settings"], mx.LIFETIME_SECONDS))
    if found:
        log.info(
            "domain_mx_refreshed",
            domains=len(found),
            grouped=sum(f.provider is not None for f in found),
            failed=sum(f.failed for f in found),
        )
    return len(found)
