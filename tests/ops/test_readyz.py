"""/readyz: 503 while PostgreSQL or Redis is unreachable, 200 again once it is back.

The app reaches both through TCP proxies of the test's own, which it stops and starts;
the shared servers are never touched."""

from __future__ import annotations

import asyncio
import time

import httpx
from sqlalchemy.engine import make_url

from mailer.app import create_app
from mailer.config import Settings
from tests.fixtures.proxy import TcpProxy


async def _wait_ready(client: httpx.AsyncClient, status: int, within: float = 30.0) -> dict:
    deadline = time.monotonic() + within
    while True:
        r = await client.get("/readyz")
        assert r.status_code in (200, 503), r.text
        if r.status_code == status:
            return r.json()  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"/readyz stayed {r.status_code}: {r.text}"
        await asyncio.sleep(0.1)


async def test_readyz_follows_postgresql_and_redis(settings: Settings, engine) -> None:  # type: ignore[no-untyped-def]
    db = make_url(settings.database_url)
    rd = make_url(settings.redis_url.replace("redis://", "postgresql://", 1))
    pg_proxy = TcpProxy(db.host or "127.0.0.1", db.port or 5432)
    redis_proxy = TcpProxy(rd.host or "127.0.0.1", rd.port or 6379)
    await pg_proxy.start()
    await redis_proxy.start()
    proxied = settings.model_copy(
        update={
            "database_url": db.set(host="127.0.0.1", port=pg_proxy.port).render_as_string(
                hide_password=False
            ),
            "redis_url": f"redis://127.0.0.1:{redis_proxy.port}/{rd.database or 0}",
        }
    )
    app = create_app(proxied)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await _wait_ready(client, 200))["checks"] == {
                    "postgresql": "ok",
                    "redis": "ok",
                }

                await pg_proxy.stop()
                body = await _wait_ready(client, 503)
                assert body["checks"]["postgresql"] != "ok" and body["checks"]["redis"] == "ok"
                assert body["status"] == "unavailable"
                await pg_proxy.start()
                await _wait_ready(client, 200)

                await redis_proxy.stop()
                body = await _wait_ready(client, 503)
                assert body["checks"]["redis"] != "ok" and body["checks"]["postgresql"] == "ok"
                await redis_proxy.start()
                await _wait_ready(client, 200)
                assert (await client.get("/healthz")).status_code == 200
    finally:
        await pg_proxy.stop()
        await redis_proxy.stop()
