"""Fixtures of the outgoing webhook tests: a receiver on 127.0.0.1, endpoints, a deliverer,
and a jail that refuses (and records) every connection outside 127.0.0.0/8."""

from __future__ import annotations

import asyncio
import asyncio.selector_events as se
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import pytest
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailer.config import Settings
from mailer.db import transaction
from mailer.webhook_out.delivery import Deliverer
from mailer.webhook_out.safety import Resolver
from mailer.webhook_out.signing import new_secret


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def payload(self) -> dict[str, Any]:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """An HTTP endpoint on 127.0.0.1 that keeps what it is sent. ``status`` is its answer;
    ``delay`` holds each answer; ``stop()``/``start()`` take it down and up on one port."""

    port: int = 0
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(Received({k.lower(): v for k, v in request.headers.items()}, body))
        self.arrived.set()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.status, text="ok", headers=self.headers)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        if not self.port:
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()


@pytest.fixture(scope="session")
def hook_settings(settings: Settings) -> Settings:
    """The test settings, with loopback targets allowed; a failed attempt is retried 5 s
    later (``drain`` returns before), ``fast_deliverer`` retries within a second."""
    return settings.model_copy(
        update={
            "webhooks_allow_private": True,
            "webhooks_retry_schedule": [5.0, 5.0, 5.0],
            "webhooks_hold_max_seconds": 0.5,
            "webhooks_timeout_seconds": 5.0,
            "webhooks_poll_seconds": 0.05,
        }
    )


@pytest.fixture
async def make_deliverer(
    hook_settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]
) -> AsyncIterator[Callable[..., Deliverer]]:
    made: list[Deliverer] = []

    def _make(resolver: Resolver | None = None, **overrides: Any) -> Deliverer:
        settings = hook_settings.model_copy(update=overrides) if overrides else hook_settings
        deliverer = Deliverer(settings, sessionmaker, resolver)
        made.append(deliverer)
        return deliverer

    yield _make
    for d in made:
        await d.stop(grace=1.0)


@pytest.fixture
def deliverer(make_deliverer: Callable[..., Deliverer]) -> Deliverer:
    return make_deliverer()


FAST_RETRIES = [0.2, 0.3, 0.5]


@pytest.fixture
def fast_deliverer(make_deliverer: Callable[..., Deliverer]) -> Deliverer:
    """Retries after fractions of a second (the real schedule's shape, shrunk)."""
    return make_deliverer(webhooks_retry_schedule=FAST_RETRIES)


async def add_endpoint(
    sessionmaker: async_sessionmaker[AsyncSession], url: str, **values: Any
) -> tuple[int, str]:
    """An endpoint written straight to its table: (id, secret)."""
    secret = new_secret()
    async with transaction(sessionmaker) as session:
        row = await session.execute(
            text(
                "INSERT INTO webhook_endpoints (url, secret, event_types, mail_classes,"
                " campaign_ids) VALUES (:url, :secret, :types, :classes, :campaigns)"
                " RETURNING id"
            ),
            {
                "url": url,
                "secret": secret,
                "types": values.get("event_types"),
                "classes": values.get("mail_classes"),
                "campaigns": values.get("campaign_ids"),
            },
        )
        return int(row.scalar_one()), secret


async def deliveries(engine: AsyncEngine, endpoint_id: int | None = None) -> list[Any]:
    sql = "SELECT * FROM webhook_deliveries"
    if endpoint_id is not None:
        sql += f" WHERE endpoint_id = {int(endpoint_id)}"
    async with engine.connect() as conn:
        return list(await conn.execute(text(sql + " ORDER BY id")))


async def wait_for(predicate: Callable[[], Any], timeout: float = 20.0) -> None:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out waiting")


def make_url_port(url: str) -> int:
    return urlsplit(url).port or 6379


@pytest.fixture
def jail(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> list[Any]:
    """Every outgoing connection this process tries, but those to the test database and
    Redis: one outside 127.0.0.0/8 is refused (never attempted), so no test here reaches
    another machine, and every one is recorded."""
    attempts: list[Any] = []
    services = {make_url(settings.database_url).port or 5432, make_url_port(settings.redis_url)}
    original = se.BaseSelectorEventLoop.sock_connect

    async def guarded(self: Any, sock: socket.socket, address: Any) -> Any:
        host = address[0]
        if not (host.startswith("127.") or host == "::1"):
            attempts.append(address)
            raise ConnectionRefusedError(f"jail: no connection to {host}")
        if address[1] not in services:
            attempts.append(address)
        return await original(self, sock, address)

    monkeypatch.setattr(se.BaseSelectorEventLoop, "sock_connect", guarded)
    return attempts


@pytest.fixture
async def hook_client(
    hook_settings: Settings, engine: AsyncEngine, redis: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with loopback targets allowed (as under ``mailer dev``)."""
    from mailer.app import create_app

    application = create_app(hook_settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://mailer.test") as c:
            yield c
