"""Targets are checked at delivery time, on the addresses the name resolves to, before any
connection: private, loopback, link-local and metadata addresses are refused (unless
``MAILER_WEBHOOKS_ALLOW_PRIVATE``), redirects are not followed.

The resolver is given fixed answers, and ``jail`` refuses and records every connection
this process attempts outside 127.0.0.0/8: no test here ever reaches another machine.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailer.db import transaction
from mailer.webhook_out import outbox
from mailer.webhook_out.safety import FixedResolver, Refused, check_url, refusal
from tests.webhook_out.conftest import Receiver, add_endpoint, deliveries

NAMES = {
    "private.example": ["10.1.2.3"],
    "loopback.example": ["127.0.0.1"],
    "linklocal.example": ["169.254.10.20"],
    "metadata.example": ["169.254.169.254"],
    "ipv6-loopback.example": ["::1"],
    "ula.example": ["fd12:3456::1"],
    "mixed.example": ["93.184.216.34", "192.168.1.1"],  # one bad address is enough
    "cgnat.example": ["100.64.0.7"],
}


async def _one_delivery(
    sessionmaker: async_sessionmaker[AsyncSession], engine: AsyncEngine, url: str
) -> Any:
    endpoint_id, _ = await add_endpoint(sessionmaker, url)
    async with transaction(sessionmaker) as session:
        await outbox.emit(session, "webhook.test", {"n": 1})
    return endpoint_id


@pytest.mark.parametrize("host", sorted(NAMES))
async def test_names_resolving_to_internal_addresses_are_refused_before_connecting(
    host: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    make_deliverer,  # type: ignore[no-untyped-def]
    jail: list[Any],
) -> None:
    resolver = FixedResolver(NAMES)
    deliverer = make_deliverer(resolver, webhooks_allow_private=False)
    await _one_delivery(sessionmaker, engine, f"https://{host}/hook")

    await deliverer.drain()

    [row] = await deliveries(engine)
    assert row.status == "pending" and row.attempts == 1  # failed, to be retried later
    assert row.last_error.startswith(f"refused: {host} resolves to ")
    assert row.last_status_code is None
    assert resolver.asked == [host]  # the check ran on the name's answer ...
    assert jail == []  # ... and no connection was attempted


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.8",
        "172.16.5.4",
        "192.168.0.1",
        "169.254.169.254",
        "[::1]",
        "[fd00:ec2::254]",
        "0.0.0.0",
        "[::ffff:10.0.0.1]",
    ],
)
async def test_address_literals_are_refused_before_connecting(
    address: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    make_deliverer,  # type: ignore[no-untyped-def]
    jail: list[Any],
) -> None:
    resolver = FixedResolver({})
    deliverer = make_deliverer(resolver, webhooks_allow_private=False)
    await _one_delivery(sessionmaker, engine, f"https://{address}/hook")

    await deliverer.drain()

    [row] = await deliveries(engine)
    assert row.last_error.startswith("refused: ")
    assert resolver.asked == []
    assert jail == []


async def test_a_loopback_receiver_is_refused_unless_private_targets_are_allowed(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    receiver: Receiver,
    make_deliverer,  # type: ignore[no-untyped-def]
    jail: list[Any],
) -> None:
    await _one_delivery(sessionmaker, engine, receiver.url)
    strict = make_deliverer(FixedResolver({}), webhooks_allow_private=False)
    await strict.drain()
    [row] = await deliveries(engine)
    assert row.last_error.startswith("refused: ")
    assert jail == [] and receiver.received == []

    # the same delivery, allowed (as `mailer dev` sets it): it arrives
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE webhook_deliveries SET next_attempt_at = now()"))
    allowed = make_deliverer(FixedResolver({}), webhooks_allow_private=True)
    await allowed.drain()
    assert len(receiver.received) == 1
    assert [a[0] for a in jail] == ["127.0.0.1"]


async def test_redirects_are_not_followed(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    receiver: Receiver,
    deliverer,  # type: ignore[no-untyped-def]
    jail: list[Any],
) -> None:
    receiver.status = 307
    receiver.headers = {"Location": "http://169.254.169.254/latest/meta-data/"}
    await _one_delivery(sessionmaker, engine, receiver.url)

    await deliverer.drain()

    [row] = await deliveries(engine)
    assert row.last_status_code == 307
    assert row.last_error == "answered 307 (redirects are not followed)"
    assert row.status == "pending"
    assert len(receiver.received) == 1
    assert all(a[0] == "127.0.0.1" for a in jail)


async def test_the_answer_body_is_read_up_to_a_cap(
    sessionmaker: async_sessionmaker[AsyncSession],
    engine: AsyncEngine,
    make_deliverer,  # type: ignore[no-untyped-def]
) -> None:
    from aiohttp import web

    big = web.Application()

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=500)
        await response.prepare(request)
        for _ in range(1000):  # 10 MB, more than anyone reads
            await response.write(b"x" * 10_000)
        return response

    big.router.add_post("/hook", answer)
    runner = web.AppRunner(big, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        await _one_delivery(sessionmaker, engine, f"http://127.0.0.1:{port}/hook")
        deliverer = make_deliverer(webhooks_max_response_bytes=100)
        await deliverer.drain()
    finally:
        await runner.cleanup()
    [row] = await deliveries(engine)
    assert row.last_status_code == 500
    assert row.last_response == "x" * 100


def test_https_only_except_loopback_http_when_allowed() -> None:
    check_url("https://hooks.example.com/a", allow_private=False)
    check_url("http://127.0.0.1:8001/a", allow_private=True)
    check_url("http://localhost:8001/a", allow_private=True)
    for url, allow in (
        ("http://hooks.example.com/a", True),
        ("http://127.0.0.1:8001/a", False),
        ("ftp://hooks.example.com/a", True),
        ("https:///nohost", True),
    ):
        with pytest.raises(Refused):
            check_url(url, allow_private=allow)


def test_public_addresses_pass() -> None:
    assert refusal("93.184.216.34") is None
    assert refusal("2606:2800:220:1:248:1893:25c8:1946") is None
