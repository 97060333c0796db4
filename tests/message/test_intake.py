"""Single POST /v1/messages committed in groups: each answered after its own commit, keys
honoured across groups and transactions, a revoked key refused within the cache's TTL."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailer.config import Settings
from mailer.db import transaction
from mailer.message import service
from mailer.message.schemas import MessageAccepted, MessageIn
from mailer.models import ApiKey
from mailer.queues import TRANSACTIONAL_QUEUE

INLINE = {
    "to": "ada@example.test",
    "from_address": "Acme <hello@mailer.test>",
    "subject": "Hi {{ data.name }}",
    "html": "<p>Hi {{ data.name }}</p>",
    "data": {"name": "Ada"},
}


@pytest.fixture
async def tx(make_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {await make_key('transactional')}"}


async def test_concurrent_requests_each_get_their_own_committed_message(
    client: httpx.AsyncClient, tx: dict[str, str], engine: AsyncEngine, redis: Redis
) -> None:
    async def post(i: int) -> tuple[httpx.Response, int]:
        r = await client.post(
            "/v1/messages",
            headers={**tx, "Idempotency-Key": f"g-{i}"},
            json={**INLINE, "to": f"user{i}@example.test"},
        )
        # answered only once committed: another connection sees the row at once
        async with engine.connect() as conn:
            seen = (
                await conn.execute(
                    text("SELECT count(*) FROM messages WHERE id = :id"), {"id": r.json()["id"]}
                )
            ).scalar_one()
        return r, int(seen)

    answers = await asyncio.gather(*(post(i) for i in range(40)))
    assert {r.status_code for r, _ in answers} == {202}
    assert {seen for _, seen in answers} == {1}
    ids = {r.json()["id"] for r, _ in answers}
    assert len(ids) == 40
    async with engine.connect() as conn:
        rows = (await conn.execute(text("SELECT id, email FROM messages"))).all()
    by_id = {row.id: row.email for row in rows}
    for i, (r, _) in enumerate(answers):
        assert by_id[r.json()["id"]] == f"user{i}@example.test"
    # enqueued: every message is in some job on the transactional queue
    assert await redis.zcard(TRANSACTIONAL_QUEUE) >= 1


async def test_one_key_in_two_transactions_at_once_is_one_message(
    sessionmaker: async_sessionmaker[AsyncSession],
    settings: Settings,
    app,  # type: ignore[no-untyped-def]
    make_key,  # type: ignore[no-untyped-def]
    engine: AsyncEngine,
) -> None:
    """The second transaction waits for the first's key, then answers its message."""
    redis = app.state.arq
    await make_key("transactional")
    async with engine.connect() as conn:
        api_key_id = (await conn.execute(text("SELECT id FROM api_keys"))).scalar_one()
    body = MessageIn.model_validate(INLINE)
    first_inserted = asyncio.Event()

    async def accept(hold: bool) -> service.MessageAccepted | Exception:
        async with transaction(sessionmaker) as session:
            [answer] = await service.accept(
                session, settings, redis, api_key_id, [service.Request(body, "same", ["body"])]
            )
            if hold:
                first_inserted.set()
                await asyncio.sleep(0.3)  # the other waits on our key meanwhile
        return answer  # type: ignore[return-value]

    first = asyncio.create_task(accept(True))
    await first_inserted.wait()
    second = await accept(False)
    one = await first
    assert isinstance(one, MessageAccepted) and isinstance(second, MessageAccepted)
    assert one.id == second.id
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM messages"))).scalar_one() == 1


async def test_a_revoked_key_is_refused_once_the_cache_ttl_passed(
    client: httpx.AsyncClient,
    tx: dict[str, str],
    app,  # type: ignore[no-untyped-def]
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    app.state.api_keys.ttl = 0.2
    assert (await client.post("/v1/messages", headers=tx, json=INLINE)).status_code == 202
    raw = tx["Authorization"].removeprefix("Bearer ")
    async with transaction(sessionmaker) as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.key_hash == hashlib.sha256(raw.encode()).hexdigest())
            .values(revoked_at=datetime.now(UTC))
        )
    await asyncio.sleep(0.3)
    r = await client.post("/v1/messages", headers=tx, json=INLINE)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthorized"
    assert r.headers["x-request-id"]


async def test_refusals_on_the_lean_path_are_the_apps_own(
    client: httpx.AsyncClient, tx: dict[str, str]
) -> None:
    """What the lean handler does not accept is answered by the app: one X-Request-ID,
    the envelope, the paths."""
    r = await client.post("/v1/messages", headers=tx, json={**INLINE, "to": 5})
    assert r.status_code == 422
    assert r.json()["error"]["details"][0]["path"] == ["body", "to"]
    assert len(r.headers.get_list("x-request-id")) == 1
    r = await client.post("/v1/messages", headers={**tx, "Idempotency-Key": "x" * 300}, json=INLINE)
    assert r.status_code == 422
    r = await client.post("/v1/messages", headers={**tx, "X-Request-ID": "abc-1"}, json=INLINE)
    assert r.status_code == 202
    assert r.headers.get_list("x-request-id") == ["abc-1"]
