"""Custom recipient domains grouped by the provider hosting their mail, from their MX.

A domain outside the fixed table (``engagement.providers``) whose preferred MX host is
one of a big provider's is shown under that provider: ``*.google.com`` /
``*.googlemail.com`` (Google Workspace) under Gmail, ``*.protection.outlook.com``
(Microsoft 365) under Outlook, ``*.yahoodns.net`` under Yahoo/AOL, ``*.mail.icloud.com``
under Apple iCloud — the same filters judge the mail, so the same row shows it — and a few
other hosts under their own names (``MX_HOSTS``). Any other domain keeps its own name.

The look-ups never sit on a report's path: :func:`refresh` (a periodic job) takes the
domains of the last week's feedback not looked up within ``TTL`` (``RETRY`` after a failed
look-up), busiest first, ``BATCH`` at a time, ``CONCURRENCY`` at once, each given up after
``LIFETIME_SECONDS``, and stores each answer in ``domain_mx``, which the reports join.
A domain without MX (or with the null MX, ``0 .``) is stored as its own; a look-up that
fails is stored as unknown and tried again after ``RETRY``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import dns.asyncresolver
import dns.exception
import dns.resolver
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.db import transaction
from mailer.engagement import mx_repository as repo
from mailer.engagement.providers import DOMAIN_PROVIDER

TTL = timedelta(days=7)
RETRY = timedelta(hours=1)
BATCH = 200
CONCURRENCY = 20
LIFETIME_SECONDS = 3.0

# MX host suffixes (a whole host or its parent domain) → the provider shown
MX_HOSTS: dict[str, str] = {
    "google.com": "Gmail",
    "googlemail.com": "Gmail",
    "protection.outlook.com": "Outlook",
    "yahoodns.net": "Yahoo/AOL",
    "mail.icloud.com": "Apple iCloud",
    "zoho.com": "Zoho",
    "zoho.eu": "Zoho",
    "protonmail.ch": "Proton",
    "messagingengine.com": "Fastmail",
    "yandex.net": "Yandex",
    "yandex.ru": "Yandex",
}


@dataclass(frozen=True)
class Found:
    domain: str
    provider: str | None = None  # None: its own (or unknown, when failed)
    mx: str | None = None  # the preferred MX host, "." for the null MX
    failed: bool = False


def provider_of_host(host: str) -> str | None:
    """The provider an MX host belongs to, if it is one of ``MX_HOSTS``."""
    labels = host.lower().rstrip(".").split(".")
    for i in range(len(labels) - 1):
        provider = MX_HOSTS.get(".".join(labels[i:]))
        if provider is not None:
            return provider
    return None


async def look_up(resolve: dns.asyncresolver.Resolver, domain: str) -> Found:
    """``domain``'s preferred MX host and the provider it names."""
    try:
        answer = await resolve.resolve(domain, "MX")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return Found(domain)  # no mail host of its own: a definite answer
    except (dns.exception.DNSException, ValueError):  # also a name DNS cannot carry
        return Found(domain, failed=True)
    hosts = sorted(
        (r.preference, r.exchange.to_text(omit_final_dot=True).lower())
        for r in answer
        if hasattr(r, "exchange")
    )
    if not hosts:
        return Found(domain)
    host = hosts[0][1]  # "." for RFC 7505's null MX (no mail accepted): its own
    return Found(domain, provider_of_host(host), host)


async def refresh(
    sessionmaker: async_sessionmaker[AsyncSession], resolve: dns.asyncresolver.Resolver
) -> list[Found]:
    """Look up the MX of the recent domains that are due, and store the answers (no
    transaction is held while the look-ups wait)."""
    async with transaction(sessionmaker) as session:
        due = await repo.due_domains(session, list(DOMAIN_PROVIDER), TTL, RETRY, BATCH)
    if not due:
        return []
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(domain: str) -> Found:
        async with gate:
            return await look_up(resolve, domain)

    found = list(await asyncio.gather(*(one(d) for d in due)))
    async with transaction(sessionmaker) as session:
        await repo.store(session, [(f.domain, f.provider, f.mx, f.failed) for f in found])
    return found
