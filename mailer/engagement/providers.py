"""Recipient domains grouped into mailbox providers, where deliverability shows.

A domain of one of the big consumer providers is shown under the provider's name; a
custom domain whose MX is a big provider's (Google Workspace, Microsoft 365, …) under that
provider, once a periodic job has looked it up (``engagement.mx``); any other domain under
its own.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from mailer.engagement import results_repository as repo
from mailer.engagement.schemas import ProviderOut

PROVIDERS: dict[str, tuple[str, ...]] = {
    "Gmail": ("gmail.com", "googlemail.com"),
    "Outlook": (
        "outlook.com", "hotmail.com", "live.com", "msn.com", "passport.com",
        "outlook.fr", "outlook.de", "outlook.es", "outlook.it", "outlook.jp",
        "hotmail.co.uk", "hotmail.fr", "hotmail.de", "hotmail.es", "hotmail.it",
        "live.co.uk", "live.fr", "live.de", "live.nl", "live.it", "live.com.au", "windowslive.com",
    ),
    "Yahoo/AOL": (
        "yahoo.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.es", "yahoo.it",
        "yahoo.co.jp", "yahoo.com.br", "yahoo.ca", "yahoo.com.au", "ymail.com",
        "rocketmail.com", "aol.com", "aol.co.uk", "aim.com", "verizon.net",
    ),
    "Apple iCloud": ("icloud.com", "me.com", "mac.com"),
}  # fmt: skip

DOMAIN_PROVIDER: dict[str, str] = {d: name for name, ds in PROVIDERS.items() for d in ds}


def provider_of(domain: str) -> str:
    """The provider of a recipient domain by the fixed table: its name, or the domain."""
    return DOMAIN_PROVIDER.get(domain.lower(), domain.lower())


def mapping_params() -> dict[str, list[str]]:
    """The mapping as two arrays, for SQL that groups domains into providers."""
    return {"map_domains": list(DOMAIN_PROVIDER), "map_providers": list(DOMAIN_PROVIDER.values())}


def provider_out(r: Any) -> ProviderOut:
    """A provider's row of the report, with its rates."""
    delivered, bounced = int(r.delivered), int(r.bounced)
    complained, opened = int(r.complained), int(r.opened)
    return ProviderOut(
        provider=r.provider,
        domains=r.domains,
        delivered=delivered,
        bounced=bounced,
        complained=complained,
        delayed=int(r.delayed),
        opened=opened,
        bounce_rate=_rate(bounced, delivered + bounced),
        complaint_rate=_rate(complained, delivered),
        open_rate=_rate(opened, delivered),
    )


def _rate(part: int, whole: int) -> float:
    return min(part / whole, 1.0) if whole > 0 else 0.0


WINDOWS = ("24h", "7d")


async def class_providers(
    db: AsyncSession | AsyncConnection, mail_classes: list[str], limit: int = 20
) -> dict[str, dict[str, list[ProviderOut]]]:
    """Per mail class and window (24 h, 7 d): its busiest providers (GET /v1/reputation)."""
    out: dict[str, dict[str, list[ProviderOut]]] = {
        mail_class: {name: [] for name in WINDOWS} for mail_class in mail_classes
    }
    for row in await repo.class_providers(db, mapping_params(), limit):
        by_window = out.setdefault(row.mail_class, {name: [] for name in WINDOWS})
        by_window[row.span].append(provider_out(row))
    return out
