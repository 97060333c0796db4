"""API keys: every /v1 route needs a key with the right scope; keys stored hashed."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.auth import service
from mailer.auth.dependencies import RequireScope
from mailer.db import transaction
from mailer.models import SCOPES, ApiKey

MakeKey = Callable[..., Awaitable[str]]
Sessionmaker = async_sessionmaker[AsyncSession]

# plausible values for path parameters, by name; anything else gets "1"
PATH_VALUES = {"email": "a@b.test"}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with the path parameters filled in
    template: str
    scopes: tuple[str, ...]  # every RequireScope found on the route

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def _required_scopes(dependant: Dependant | None) -> Iterator[str]:
    for dep in dependant.dependencies if dependant is not None else []:
        if isinstance(dep.call, RequireScope):
            yield dep.call.scope
        yield from _required_scopes(dep)


def _routes(app: FastAPI) -> Iterator[Any]:
    """Every route of the app, with the effective path and dependencies of included routers."""
    # FastAPI >= 0.165 keeps included routers nested in app.routes
    iter_contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    if iter_contexts is None:
        yield from app.routes
    else:
        yield from iter_contexts(app.routes)


def _fill(path: str) -> str:
    return re.sub(r"{([^}:]+)(:[^}]*)?}", lambda m: PATH_VALUES.get(m[1], "1"), path)


def v1_endpoints(app: FastAPI) -> list[Endpoint]:
    endpoints = []
    for route in _routes(app):
        path = getattr(route, "path", None) or ""
        if not path.startswith("/v1"):
            continue
        # a /v1 route that is not an APIRoute (a mount, a plain route) has no dependant:
        # it shows up with no scope and fails the guard test
        scopes = tuple(dict.fromkeys(_required_scopes(getattr(route, "dependant", None))))
        methods = getattr(route, "methods", None) or {"GET"}
        for method in sorted(methods - {"HEAD", "OPTIONS"}):
            endpoints.append(Endpoint(method, _fill(path), path, scopes))
    return endpoints


def _other_scope(scopes: tuple[str, ...]) -> str:
    return next(s for s in SCOPES if s != "admin" and s not in scopes)


def _assert_error(response: httpx.Response, status: int, endpoint: Endpoint) -> str | None:
    """None when ``response`` is the error answer expected, else what is wrong with it."""
    if response.status_code != status:
        return f"{endpoint}: {response.status_code}, expected {status}: {response.text[:200]}"
    body = response.json()
    error = body.get("error") if isinstance(body, dict) else None
    if (
        not isinstance(error, dict)
        or set(error) != {"code", "message", "details"}
        or not isinstance(error["code"], str)
        or not isinstance(error["message"], str)
        or not isinstance(error["details"], list)
    ):
        return f"{endpoint}: error body {body!r}"
    return None


@pytest.fixture
async def endpoints(app: FastAPI) -> list[Endpoint]:
    found = v1_endpoints(app)
    assert found, "the app has no /v1 routes"
    return found


async def _call(
    client: httpx.AsyncClient, endpoint: Endpoint, headers: dict[str, str] | None = None
) -> httpx.Response:
    return await client.request(endpoint.method, endpoint.path, headers=headers or {})


async def _revoke(sessionmaker: async_sessionmaker[AsyncSession], raw: str) -> None:
    async with transaction(sessionmaker) as session:
        await session.execute(
            update(ApiKey)
            .where(ApiKey.key_hash == hashlib.sha256(raw.encode()).hexdigest())
            .values(revoked_at=datetime.now(UTC))
        )


def test_every_v1_route_requires_a_known_scope(endpoints: list[Endpoint]) -> None:
    unguarded = [str(e) for e in endpoints if not e.scopes]
    assert unguarded == [], "these /v1 routes have no RequireScope dependency"
    unknown = [f"{e}: {e.scopes}" for e in endpoints if not set(e.scopes) <= set(SCOPES)]
    assert unknown == []


async def test_no_key_is_401(client: httpx.AsyncClient, endpoints: list[Endpoint]) -> None:
    problems = [_assert_error(await _call(client, e), 401, e) for e in endpoints]
    assert [p for p in problems if p] == []


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer garbage",
        "Bearer ",
        "Bearer mk_",
        "Bearer mk_abc",
        "Bearer mk_0123456789ab_" + "x" * 43,  # well formed, unknown prefix
        "Bearer mk_" + "a" * 40 + "_secret",  # prefix longer than any stored one
        "Basic dXNlcjpwYXNz",
        "garbage",
    ],
)
async def test_bad_or_unknown_key_is_401(
    client: httpx.AsyncClient, endpoints: list[Endpoint], authorization: str
) -> None:
    headers = {"Authorization": authorization}
    problems = [_assert_error(await _call(client, e, headers), 401, e) for e in endpoints]
    assert [p for p in problems if p] == []


async def test_known_prefix_with_wrong_secret_is_401(
    client: httpx.AsyncClient, endpoints: list[Endpoint], make_key: MakeKey
) -> None:
    raw = await make_key(*SCOPES)
    forged = raw[:-4] + ("AAAA" if not raw.endswith("AAAA") else "BBBB")
    headers = {"Authorization": f"Bearer {forged}"}
    problems = [_assert_error(await _call(client, e, headers), 401, e) for e in endpoints]
    assert [p for p in problems if p] == []


async def test_revoked_key_is_401(
    client: httpx.AsyncClient,
    endpoints: list[Endpoint],
    make_key: MakeKey,
    sessionmaker: Sessionmaker,
) -> None:
    raw = await make_key("admin")
    await _revoke(sessionmaker, raw)
    headers = {"Authorization": f"Bearer {raw}"}
    problems = [_assert_error(await _call(client, e, headers), 401, e) for e in endpoints]
    assert [p for p in problems if p] == []


async def test_401_asks_for_a_bearer_token(
    client: httpx.AsyncClient, endpoints: list[Endpoint]
) -> None:
    response = await _call(client, endpoints[0])
    assert response.status_code == 401
    assert response.headers.get("www-authenticate", "").lower().startswith("bearer")


async def test_key_without_the_scope_is_403(
    client: httpx.AsyncClient, endpoints: list[Endpoint], make_key: MakeKey
) -> None:
    problems = []
    for endpoint in endpoints:
        raw = await make_key(_other_scope(endpoint.scopes))
        response = await _call(client, endpoint, {"Authorization": f"Bearer {raw}"})
        problems.append(_assert_error(response, 403, endpoint))
    assert [p for p in problems if p] == []


async def test_key_with_the_scope_gets_past_auth(
    client: httpx.AsyncClient, endpoints: list[Endpoint], make_key: MakeKey
) -> None:
    stopped = []
    for endpoint in endpoints:
        raw = await make_key(*endpoint.scopes)
        response = await _call(client, endpoint, {"Authorization": f"Bearer {raw}"})
        if response.status_code in (401, 403) or response.status_code >= 500:
            stopped.append(f"{endpoint}: {response.status_code} {response.text[:200]}")
    assert stopped == []


async def test_admin_key_passes_every_scope(
    client: httpx.AsyncClient, endpoints: list[Endpoint], admin: dict[str, str]
) -> None:
    stopped = []
    for endpoint in endpoints:
        response = await _call(client, endpoint, admin)
        if response.status_code in (401, 403) or response.status_code >= 500:
            stopped.append(f"{endpoint}: {response.status_code} {response.text[:200]}")
    assert stopped == []


async def test_admin_is_allowed_every_scope(sessionmaker: Sessionmaker, make_key: MakeKey) -> None:
    raw = await make_key("admin")
    async with sessionmaker() as session:
        key = await service.authenticate(session, raw)
    assert key is not None
    assert all(service.allows(key, scope) for scope in SCOPES)


async def test_scoped_key_is_allowed_only_its_scopes(
    sessionmaker: Sessionmaker, make_key: MakeKey
) -> None:
    raw = await make_key("campaigns", "reputation")
    async with sessionmaker() as session:
        key = await service.authenticate(session, raw)
    assert key is not None
    allowed = {scope for scope in SCOPES if service.allows(key, scope)}
    assert allowed == {"campaigns", "reputation"}


async def test_keys_are_stored_hashed(sessionmaker: Sessionmaker, make_key: MakeKey) -> None:
    raw = await make_key("campaigns", name="hashed")
    secret = raw.split("_", 2)[2]  # mk_<prefix>_<secret>; the secret may hold "_" itself
    assert len(secret) >= 32
    async with sessionmaker() as session:
        # every column, as text, so that a column added later is checked too
        row = (
            await session.execute(
                text(
                    "SELECT row_to_json(k)::text, k.key_hash FROM api_keys k WHERE name = 'hashed'"
                )
            )
        ).one()
    stored, key_hash = row
    assert raw not in stored
    assert secret not in stored
    assert key_hash == hashlib.sha256(raw.encode()).hexdigest()


async def test_authenticate_finds_the_live_key(
    sessionmaker: Sessionmaker, make_key: MakeKey
) -> None:
    raw = await make_key("transactional", name="live")
    async with sessionmaker() as session:
        key = await service.authenticate(session, raw)
        wrong = await service.authenticate(session, raw + "x")
    assert key is not None and key.name == "live"
    assert wrong is None


async def test_authenticate_returns_none_for_a_revoked_key(
    sessionmaker: Sessionmaker, make_key: MakeKey
) -> None:
    raw = await make_key("transactional")
    await _revoke(sessionmaker, raw)
    async with sessionmaker() as session:
        assert await service.authenticate(session, raw) is None


async def test_create_key_rejects_unknown_or_no_scopes(sessionmaker: Sessionmaker) -> None:
    from mailer.errors import Invalid

    for scopes in (["superuser"], []):
        with pytest.raises(Invalid):
            async with transaction(sessionmaker) as session:
                await service.create_key(session, "bad", scopes)


async def _last_used(sessionmaker: Sessionmaker, raw: str) -> datetime | None:
    async with sessionmaker() as session:
        return (
            await session.execute(
                text("SELECT last_used_at FROM api_keys WHERE key_hash = :h"),
                {"h": hashlib.sha256(raw.encode()).hexdigest()},
            )
        ).scalar_one()


async def test_last_used_at_is_written_at_most_once_a_minute(
    client: httpx.AsyncClient, make_key: MakeKey, sessionmaker: Sessionmaker
) -> None:
    raw = await make_key("campaigns")
    headers = {"Authorization": f"Bearer {raw}"}
    assert await _last_used(sessionmaker, raw) is None
    assert (await client.get("/v1/templates/1", headers=headers)).status_code == 404
    first = await _last_used(sessionmaker, raw)
    assert first is not None
    # within the minute: no second write
    assert (await client.get("/v1/templates/1", headers=headers)).status_code == 404
    assert await _last_used(sessionmaker, raw) == first
    # a minute and more later: written again
    async with transaction(sessionmaker) as session:
        await session.execute(
            text(
                "UPDATE api_keys SET last_used_at = now() - interval '61 seconds'"
                " WHERE key_hash = :h"
            ),
            {"h": hashlib.sha256(raw.encode()).hexdigest()},
        )
    stale = await _last_used(sessionmaker, raw)
    assert (await client.get("/v1/templates/1", headers=headers)).status_code == 404
    latest = await _last_used(sessionmaker, raw)
    assert stale is not None and latest is not None and latest > stale
    assert latest >= first


async def test_a_refused_key_is_not_marked_used(
    client: httpx.AsyncClient, make_key: MakeKey, sessionmaker: Sessionmaker
) -> None:
    raw = await make_key("campaigns")
    await _revoke(sessionmaker, raw)
    assert (
        await client.get("/v1/templates/1", headers={"Authorization": f"Bearer {raw}"})
    ).status_code == 401
    assert await _last_used(sessionmaker, raw) is None
