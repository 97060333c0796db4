"""A response leaves only after its commit and its after-commit work succeeded (issue 7)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.app import create_app
from mailer.config import Settings
from mailer.local.databases import start_redis
from tests.conftest import _count
from tests.fixtures.api import free_port

CSV = b"email,first_name\nada@example.com,Ada\n"
IMPORT_QUEUE = "arq:imports"
FailAtCommit = Callable[[str], Awaitable[None]]


@pytest.fixture
async def lenient(app: FastAPI, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    # whatever the app sends is what the client gets: a 2xx sent before a failed commit
    # shows up as that 2xx here, not as an exception
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://mailer.test") as c:
        yield c


@pytest.fixture
async def fail_at_commit(engine: AsyncEngine) -> AsyncIterator[FailAtCommit]:
    """``await fail_at_commit(sqlstate)``: inserts into contact_imports are refused at COMMIT."""

    async def _install(sqlstate: str) -> None:
        async with engine.begin() as conn:
            await conn.execute(
                text(f"""
                CREATE OR REPLACE FUNCTION test_fail_at_commit() RETURNS trigger
                LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'refused at commit' USING ERRCODE = '{sqlstate}'; END $$
            """)
            )
            await conn.execute(
                text("""
                CREATE CONSTRAINT TRIGGER test_fail_at_commit AFTER INSERT ON contact_imports
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_fail_at_commit()
            """)
            )

    yield _install
    async with engine.begin() as conn:
        await conn.execute(text("DROP TRIGGER IF EXISTS test_fail_at_commit ON contact_imports"))
        await conn.execute(text("DROP FUNCTION IF EXISTS test_fail_at_commit()"))


async def _post_import(client: httpx.AsyncClient, headers: dict[str, str]) -> httpx.Response:
    return await client.post(
        "/v1/contacts/imports", content=CSV, headers={**headers, "Content-Type": "text/csv"}
    )


async def test_after_commit_work_is_done_when_the_response_arrives(
    lenient: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine, redis: Redis
) -> None:
    response = await _post_import(lenient, admin)
    assert response.status_code == 202, response.text
    # the import job was enqueued (after the commit) before the 202 left
    assert await redis.zcard(IMPORT_QUEUE) == 1
    assert await _count(engine, "SELECT count(*) FROM contact_imports") == 1


@pytest.mark.parametrize(
    ("sqlstate", "status", "code"),
    [("23514", 409, "conflict"), ("40001", 503, "unavailable")],
    ids=["constraint-at-commit", "serialization-failure-at-commit"],
)
async def test_a_commit_that_fails_is_not_answered_2xx(
    lenient: httpx.AsyncClient,
    admin: dict[str, str],
    engine: AsyncEngine,
    redis: Redis,
    fail_at_commit: FailAtCommit,
    sqlstate: str,
    status: int,
    code: str,
) -> None:
    await fail_at_commit(sqlstate)
    response = await _post_import(lenient, admin)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert set(response.json()["error"]) == {"code", "message", "details"}
    # nothing was saved and the after-commit work (the enqueue) did not run
    assert await _count(engine, "SELECT count(*) FROM contact_imports") == 0
    assert await redis.zcard(IMPORT_QUEUE) == 0
    assert await redis.keys("arq:job:*") == []


async def test_after_commit_work_that_fails_is_not_answered_2xx(
    settings: Settings, engine: AsyncEngine, admin: dict[str, str], tmp_path: Path
) -> None:
    # the app's Redis is a private one, stopped once the app is up: the commit succeeds, the
    # enqueue after it fails, and the client must hear of it
    private = start_redis(tmp_path / "redis", port=free_port())
    app = create_app(settings.model_copy(update={"redis_url": private.url}))
    try:
        async with app.router.lifespan_context(app):
            private.stop()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                response = await _post_import(client, admin)
    finally:
        private.stop()
    assert not response.is_success, response.text
    assert response.json()["error"]["code"] == "internal"
    assert response.headers["x-request-id"] == response.json()["error"]["request_id"]
