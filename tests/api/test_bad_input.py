"""Bad input never gives a 500 (issue 7): ids are bounded integers, JSON with NUL, unpaired
surrogates or non-finite numbers is refused with 422, and anything unexpected is answered
with the error envelope and a request id."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.config import Settings
from tests import factories
from tests.auth.test_auth import Endpoint, v1_endpoints
from tests.conftest import _count

HUGE = "99999999999999999999"  # 2**66 and more: no bigint holds it
BAD_IDS = [HUGE, "9223372036854775808", "-1", "0", "1e3", "abc", "%C2%B2", "%D9%A1"]

# each a whole JSON body no endpoint may be handed
BAD_BODIES = {
    "nul-in-a-value": b'{"name": "a\\u0000b"}',
    "nul-in-a-key": b'{"a\\u0000b": 1}',
    "nul-deep-inside": b'{"attributes": {"x": [{"y": "\\u0000"}]}}',
    "lone-surrogate": b'{"name": "\\ud800"}',
    "1e400": b'{"k": 1e400}',
    "-1e400": b'{"k": -1e400}',
    "NaN": b'{"k": NaN}',
    "Infinity": b'{"k": Infinity}',
    "-Infinity": b'{"k": [-Infinity]}',
    "int-beyond-64-bits": b'{"k": 99999999999999999999}',
    "int-of-5000-digits": b'{"k": ' + b"9" * 5000 + b"}",
    "nested-too-deep": b'{"k": ' + b"[" * 5000 + b"]" * 5000 + b"}",
    "not-utf8": b'{"k": "\xff\xfe"}',
    "raw-nul-byte": b'{"k": "a\x00b"}',
    "truncated": b'{"k": ',
}


def assert_envelope(response: httpx.Response, status: int | tuple[int, ...], what: str) -> None:
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, f"{what}: {response.status_code} {response.text}"
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}, f"{what}: {error}"
    assert isinstance(error["code"], str) and isinstance(error["message"], str)
    assert isinstance(error["details"], list)
    assert response.headers.get("x-request-id"), what


@pytest.fixture
async def endpoints(app: FastAPI) -> list[Endpoint]:
    found = v1_endpoints(app)
    assert found
    return found


def _with_id(endpoint: Endpoint, value: str) -> str | None:
    """The route's path with every id parameter set to ``value``; None without one."""
    names = re.findall(r"{([^}:]+)", endpoint.template)
    ids = [n for n in names if n != "email"]
    if not ids:
        return None
    return re.sub(
        r"{([^}:]+)(:[^}]*)?}",
        lambda m: "a@b.test" if m[1] == "email" else value,
        endpoint.template,
    )


async def test_every_route_refuses_an_id_no_bigint_holds(
    client: httpx.AsyncClient, endpoints: list[Endpoint], admin: dict[str, str]
) -> None:
    with_ids = [e for e in endpoints if _with_id(e, "1")]
    assert len(with_ids) >= 8  # templates, segments, campaigns, imports, ...
    for endpoint in with_ids:
        for bad in BAD_IDS:
            path = _with_id(endpoint, bad)
            assert path is not None
            response = await client.request(endpoint.method, path, headers=admin, json={})
            assert_envelope(response, (404, 422), f"{endpoint.method} {path}")


def _body_ids(app: FastAPI) -> list[tuple[str, str, str]]:
    """(method, path, property) for every integer ``*_id`` of every JSON request body."""
    schema = app.openapi()
    found = []
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {})
            ref = content.get("application/json", {}).get("schema", {}).get("$ref", "")
            if not ref:
                continue
            model = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
            for name, prop in model.get("properties", {}).items():
                if name.endswith("_id") and prop.get("type") == "integer":
                    found.append((method.upper(), path, name))
    return found


@pytest.mark.parametrize("value", [2**63, 10**30, 0, -1])
async def test_every_body_id_outside_1_to_2_63_is_refused(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], value: int
) -> None:
    ids = _body_ids(app)
    assert ("POST", "/v1/campaigns", "template_id") in ids
    for method, path, name in ids:
        url = re.sub(r"{[^}]+}", "1", path)
        response = await client.request(method, url, headers=admin, json={name: value})
        assert_envelope(response, (404, 422), f"{method} {path} {name}={value}")
        if response.status_code == 422 and value > 0:
            paths = [d["path"] for d in response.json()["error"]["details"]]
            assert ["body", name] in paths, f"{method} {path}: {paths}"


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
async def test_every_route_refuses_json_it_cannot_store(
    client: httpx.AsyncClient, endpoints: list[Endpoint], admin: dict[str, str], body: bytes
) -> None:
    headers = {**admin, "Content-Type": "application/json"}
    for endpoint in endpoints:
        path = _with_id(endpoint, "1") or endpoint.path
        response = await client.request(endpoint.method, path, headers=headers, content=body)
        if endpoint.method == "GET":
            # a GET has no body to read; whatever it answers, it is never a 5xx
            assert response.status_code < 500, f"{endpoint}: {response.text}"
            continue
        assert_envelope(response, 422, str(endpoint))
        assert response.json()["error"]["details"][0]["path"][0] == "body"


async def test_nul_in_the_url_is_refused(
    client: httpx.AsyncClient, endpoints: list[Endpoint], admin: dict[str, str]
) -> None:
    for endpoint in endpoints:
        path = _with_id(endpoint, "1") or endpoint.path
        for url in (f"{path}?status=a%00b", path.replace("a@b.test", "a%00@b.test")):
            if url == path:
                continue
            response = await client.request(endpoint.method, url, headers=admin)
            assert_envelope(response, 422, f"{endpoint.method} {url}")


# --- the cases the issue reports, one by one ----------------------------------------------


async def test_import_with_a_huge_id_is_422(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.get(f"/v1/contacts/imports/{HUGE}", headers=admin)
    assert_envelope(response, 422, "import")
    assert response.json()["error"]["details"][0]["path"] == ["path", "import_id"]


async def test_template_with_a_huge_id_is_422(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.get(f"/v1/templates/{HUGE}", headers=admin)
    assert_envelope(response, 422, "template")


async def test_contact_attribute_with_nul_is_422_and_stores_nothing(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    response = await client.put(
        "/v1/contacts/ada@example.com",
        headers=admin,
        json={"attributes": {"first_name": "Ada\u0000"}},
    )
    assert_envelope(response, 422, "contact")
    assert response.json()["error"]["details"][0]["path"] == ["body", "attributes", "first_name"]
    assert await _count(engine, "SELECT count(*) FROM contacts") == 0


async def test_contact_attribute_1e400_is_422(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    response = await client.put(
        "/v1/contacts/ada@example.com",
        headers={**admin, "Content-Type": "application/json"},
        content=b'{"attributes": {"k": 1e400}}',
    )
    assert_envelope(response, 422, "1e400")
    assert await _count(engine, "SELECT count(*) FROM contacts") == 0


@pytest.mark.parametrize("route", ["/v1/segments/preview", "/v1/segments"])
async def test_segment_filter_value_with_nul_is_422(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine, route: str
) -> None:
    body = {
        "name": "s",
        "filter": {"all": [{"field": "attributes.city", "op": "eq", "value": "Par\u0000is"}]},
    }
    if route.endswith("preview"):
        del body["name"]
    response = await client.post(route, headers=admin, json=body)
    assert_envelope(response, 422, route)
    assert await _count(engine, "SELECT count(*) FROM segments") == 0


async def test_campaign_with_a_huge_template_id_is_422(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    response = await client.post(
        "/v1/campaigns",
        headers=admin,
        json={"name": "c", "template_id": 2**63, "segment_id": 1, "from_address": "a@b.test"},
    )
    assert_envelope(response, 422, "campaign")


async def test_a_template_version_beyond_the_integer_column_is_422(
    client: httpx.AsyncClient, admin: dict[str, str], engine: AsyncEngine
) -> None:
    # found by schemathesis: the version went to an int4 column and asyncpg refused it (500)
    made = await factories.campaign(client, admin)
    body = {
        "name": "c",
        "template_id": made["template_id"],
        "segment_id": made["segment_id"],
        "from_address": "a@b.test",
    }
    for version in (2**31, 23154207140127):
        response = await client.post(
            "/v1/campaigns", headers=admin, json={**body, "template_version": version}
        )
        assert_envelope(response, 422, "create")
        response = await client.patch(
            f"/v1/campaigns/{made['id']}", headers=admin, json={"template_version": version}
        )
        assert_envelope(response, 422, "patch")
    assert await _count(engine, "SELECT count(*) FROM campaigns") == 1


async def test_good_json_with_escapes_still_passes(
    client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    # escapes that are not NUL or lone surrogates, a surrogate pair, big but finite numbers
    response = await client.put(
        "/v1/contacts/ada@example.com",
        headers={**admin, "Content-Type": "application/json"},
        content=b'{"attributes": {"name": "A\\u00e9\\n\\ud83d\\ude00", "big": 1.5e3, '
        b'"n": 9223372036854775807, "m": -9223372036854775808, "path": "C:\\\\u0000"}}',
    )
    assert response.status_code == 201, response.text
    assert response.json()["attributes"] == {
        "name": "Aé\n😀",
        "big": 1.5e3,
        "n": 2**63 - 1,
        "m": -(2**63),
        "path": "C:\\u0000",
    }


# --- the catch-all ------------------------------------------------------------------------


@pytest.fixture
async def failing_route_client(app: FastAPI, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with one more route whose endpoint raises something unexpected."""

    async def broken() -> None:
        raise RuntimeError("something nobody planned for")

    app.add_api_route("/test-broken", broken, methods=["GET"])
    transport = httpx.ASGITransport(app=app)  # exceptions would reach the test: none must
    async with httpx.AsyncClient(transport=transport, base_url="http://mailer.test") as c:
        yield c


async def test_an_unexpected_error_is_a_500_envelope_with_a_request_id(
    failing_route_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="mailer.middleware"):
        response = await failing_route_client.get("/test-broken")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    request_id = response.headers["x-request-id"]
    assert error["code"] == "internal"
    assert error["request_id"] == request_id
    assert error["details"] == []
    assert request_id in error["message"]
    assert "something nobody planned for" not in response.text  # no internals to the client
    logged = [r for r in caplog.records if request_id in r.getMessage()]
    assert logged and logged[0].exc_info is not None
    assert "something nobody planned for" in caplog.text  # the traceback is in the log


async def test_every_answer_carries_a_request_id(client: httpx.AsyncClient) -> None:
    mine = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert mine.headers["x-request-id"] == "abc-123"
    fresh = await client.get("/healthz", headers={"X-Request-ID": "no spaces; allowed"})
    assert re.fullmatch(r"[0-9a-f]{32}", fresh.headers["x-request-id"])
    unauthorized = await client.get("/v1/templates/1")
    assert unauthorized.status_code == 401 and unauthorized.headers["x-request-id"]


async def test_json_over_the_body_limit_is_413_even_where_csv_may_be_larger(
    client: httpx.AsyncClient, admin: dict[str, str], settings: Settings
) -> None:
    # the import route takes CSV up to max_import_bytes; JSON there is held to max_body_bytes
    big = b'{"k": "' + b"x" * settings.max_body_bytes + b'"}'
    for path in ("/v1/contacts/imports", "/v1/segments/preview"):
        response = await client.post(
            path, headers={**admin, "Content-Type": "application/json"}, content=big
        )
        assert_envelope(response, 413, path)
