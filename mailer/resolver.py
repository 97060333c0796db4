"""The DNS resolver every look-up goes through (DMARC in ``mailer ses check``, recipient
domains' MX for the provider reports): ``MAILER_DNS_RESOLVERS`` (``host`` or
``host:port``, comma-separated) when set, else the system's."""

from __future__ import annotations

import dns.asyncresolver
import dns.nameserver

from mailer.config import Settings


def resolver(settings: Settings, lifetime: float = 5.0) -> dns.asyncresolver.Resolver:
    """The resolver of ``MAILER_DNS_RESOLVERS``, or the system's; a look-up gives up after
    ``lifetime`` seconds."""
    if not settings.dns_resolvers:
        found = dns.asyncresolver.Resolver()
    else:
        found = dns.asyncresolver.Resolver(configure=False)
        servers: list[str | dns.nameserver.Nameserver] = []
        for entry in settings.dns_resolvers:
            host, port = entry, 53
            if entry.startswith("[") and "]:" in entry:  # [IPv6]:port
                host, _, given = entry[1:].partition("]:")
                port = int(given)
            elif entry.count(":") == 1:  # host:port (a bare IPv6 address has no port)
                host, _, given = entry.partition(":")
                port = int(given)
            servers.append(dns.nameserver.Do53Nameserver(host.strip("[]"), port))
        found.nameservers = servers
    found.lifetime = lifetime
    return found
