"""Where a webhook may go: checked at delivery time, on the addresses actually connected to.

A URL's host is resolved by a :class:`Resolver` (the system's, or fixed answers in tests),
every address it answers is checked, and the connection is made only to those addresses
(aiohttp takes them from :class:`GuardedResolver`), so a name that resolves to a private
address is refused before any connection, and a second lookup cannot swap the address
after the check. Redirects are never followed (``delivery``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from functools import lru_cache
from typing import Any, Protocol
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult

# cloud metadata services (also link-local or private; named so the refusal says so)
METADATA = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("169.254.170.2"),
    ipaddress.ip_address("100.100.100.200"),
    ipaddress.ip_address("fd00:ec2::254"),
}


class Refused(Exception):
    """The target may not be called; raised before any connection is attempted."""


def refusal(address: str) -> str | None:
    """Why a connection to ``address`` is refused, or None if it is a public address."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip in METADATA:
        return f"{address} is a cloud metadata address"
    if ip.is_loopback:
        return f"{address} is a loopback address"
    if ip.is_link_local:
        return f"{address} is a link-local address"
    if ip.is_private:
        return f"{address} is a private address"
    if not ip.is_global or ip.is_multicast:
        return f"{address} is not a public address"
    return None


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def check_url(url: str, allow_private: bool) -> None:
    """What can be judged without a lookup: the scheme, and a host given as an address.
    https always; http only to a loopback host and only where private targets are allowed
    (``mailer dev``)."""
    why = _url_refusal(url, allow_private)
    if why is not None:
        raise Refused(why)


@lru_cache(maxsize=4096)
def _url_refusal(url: str, allow_private: bool) -> str | None:
    # the same URL is judged for every delivery to its endpoint: once is enough
    try:
        _check_url(url, allow_private)
    except Refused as exc:
        return str(exc)
    except ValueError as exc:
        return f"not a URL: {exc}"
    return None


def _check_url(url: str, allow_private: bool) -> None:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if not host:
        raise Refused("the URL has no host")
    literal = _ip_literal(host)
    loopback = host == "localhost" or (
        literal is not None and ipaddress.ip_address(literal).is_loopback
    )
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback and allow_private):
        raise Refused("only https URLs are called (http only to loopback in `mailer dev`)")
    if literal is not None and not allow_private:
        why = refusal(literal)
        if why is not None:
            raise Refused(why)


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses of ``host``."""
        ...


class SystemResolver:
    async def resolve(self, host: str, port: int) -> list[str]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in infos))


class FixedResolver:
    """Fixed answers (tests, demos): a name it does not know does not resolve."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise Refused(f"{host} does not resolve")
        return list(self.answers[host])


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver: every address of the name is checked before aiohttp connects."""

    def __init__(self, resolver: Resolver, allow_private: bool) -> None:
        self.resolver = resolver
        self.allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self.resolver.resolve(host, port)
        if not addresses:
            raise Refused(f"{host} does not resolve")
        if not self.allow_private:
            for address in addresses:
                why = refusal(address)
                if why is not None:
                    raise Refused(f"{host} resolves to {why}")
        return [_result(host, address, port) for address in addresses]

    async def close(self) -> None:
        return None


def _result(host: str, address: str, port: int) -> Any:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return ResolveResult(
        hostname=host,
        host=address,
        port=port,
        family=family,
        proto=0,
        flags=socket.AI_NUMERICHOST,
    )
