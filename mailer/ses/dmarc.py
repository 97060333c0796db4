"""The DMARC record of a From domain, for ``mailer ses check``.

Gmail and Yahoo require bulk senders to publish DMARC (``p=none`` at least), and DMARC is
what DKIM and the custom MAIL FROM are aligned for. A receiver reads ``_dmarc.<From
domain>`` and, when there is none, the record of the parent domains (the organizational
domain; DMARCbis walks the tree), so the check does the same: the domain, then each
parent but the TLD. A domain without one gets a warning with a record to start with
(``mailer.ses.plan.suggested_dmarc``: monitoring only, reports to the domain).

Look-ups go to ``MAILER_DNS_RESOLVERS`` (``host`` or ``host:port``, comma-separated) when
set, else to the system's resolver; a look-up that fails is a warning of its own, never a
failure of the check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.resolver

from mailer.config import Settings
from mailer.resolver import resolver as shared_resolver
from mailer.ses.plan import suggested_dmarc
from mailer.ses.senders import candidates

LIFETIME_SECONDS = 5.0
_DMARC = re.compile(r"v\s*=\s*DMARC1\s*(;|$)")


@dataclass(frozen=True)
class Lookup:
    name: str | None = None  # where the record was found: _dmarc.<domain or a parent>
    record: str | None = None
    problem: str | None = None  # the look-up failed, or the record is unusable


def resolver(settings: Settings) -> dns.asyncresolver.Resolver:
    """The resolver of ``MAILER_DNS_RESOLVERS``, or the system's (``mailer.resolver``)."""
    return shared_resolver(settings, LIFETIME_SECONDS)


async def lookup(resolve: dns.asyncresolver.Resolver, domain: str) -> Lookup:
    """The DMARC record that applies to ``domain``."""
    for name in candidates(domain):
        qname = f"_dmarc.{name}"
        try:
            answer = await resolve.resolve(qname, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except dns.exception.DNSException as exc:
            return Lookup(problem=f"{type(exc).__name__}: {exc}")
        texts = [
            b"".join(rdata.strings).decode("utf-8", "replace")
            for rdata in answer
            if hasattr(rdata, "strings")
        ]
        records = [t for t in texts if _DMARC.match(t.strip())]
        if len(records) > 1:
            return Lookup(qname, problem=f"{len(records)} DMARC records: receivers ignore them all")
        if records:
            return Lookup(qname, records[0].strip())
    return Lookup()


def judged(domain: str, found: Lookup) -> tuple[bool, str, str | None]:
    """(fine, detail, fix) of one domain's look-up."""
    publish = f'publish TXT _dmarc.{domain} "{suggested_dmarc(domain)}"'
    if found.record is not None:
        where = "" if found.name == f"_dmarc.{domain}" else f" (from {found.name})"
        return True, f"{found.record}{where}", None
    if found.name is not None:
        return False, f"{found.name}: {found.problem}", f"keep one of them, or {publish}"
    if found.problem is not None:
        return (
            False,
            f"not looked up ({found.problem})",
            "check this machine's DNS (or set MAILER_DNS_RESOLVERS), then run the check again",
        )
    return (
        False,
        f"no DMARC record at _dmarc.{domain}: Gmail and Yahoo require one of bulk senders",
        f"{publish} (monitoring only; tighten to p=quarantine once the reports show only"
        " your own mail)",
    )


async def facts(settings: Settings, domains: list[str]) -> list[tuple[str, bool, str, str | None]]:
    """(domain, fine, detail, fix) for each domain, in order."""
    resolve = resolver(settings)
    out = []
    for domain in domains:
        fine, detail, fix = judged(domain, await lookup(resolve, domain))
        out.append((domain, fine, detail, fix))
    return out
