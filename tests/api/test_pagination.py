"""Every list route pages with the one cursor parser and the one ``limit`` rule of
``mailer.pagination`` (issue 17): a cursor that no page handed out is a 422 naming
``cursor``, never a 500 (``"²"`` and ``"١"`` pass ``str.isdigit``; 19 digits overflow
bigint). The routes are found in the app, so a new list route is covered by being one."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant

from mailer.pagination import id_page, key_cursor, key_page
from tests import factories
from tests.api.test_bad_input import assert_envelope
from tests.auth.test_auth import _fill, _routes

# cursors no page hands out, for lists keyed by id and by text alike
BAD_CURSORS = {
    "superscript-two": "²",
    "arabic-indic-one": "١",
    "40-digits": "1" * 40,
    "past-bigint": "9223372036854775808",
    "negative": "-1",
    "empty": "",
    "letters": "abc%",
    "spaces": " 1",
    "decimal": "1.0",
    "fullwidth-one": "１",
    "nul": "AA",  # base64url of a NUL byte, which PostgreSQL text cannot hold
    "not-utf8": "_w",  # base64url of 0xff
}
BAD_LIMITS = ["0", "-1", "1001", "1e3", "²", "", "x"]


def _page_kind(dependant: Dependant) -> str | None:
    for dep in dependant.dependencies:
        if dep.call is id_page:
            return "id"
        if dep.call is key_page:
            return "key"
        kind = _page_kind(dep)
        if kind is not None:
            return kind
    return None


def _answers_pages(route: object) -> bool:
    model = getattr(route, "response_model", None)
    return "next_cursor" in getattr(model, "model_fields", {})


def list_routes(app: FastAPI) -> list[tuple[str, str, str | None]]:
    """(path template, path, cursor kind) of every route that answers a page of items."""
    found = []
    for route in _routes(app):
        if _answers_pages(route):
            path = route.path
            found.append((path, _fill(path), _page_kind(route.dependant)))
    return found


def test_every_list_route_takes_the_shared_page(app: FastAPI) -> None:
    # a route answering a page of items without the shared parser would parse its own
    routes = list_routes(app)
    assert not [template for template, _, kind in routes if kind is None]
    assert {template for template, _, _ in routes} >= {
        "/v1/contacts",
        "/v1/segments",
        "/v1/templates",
        "/v1/messages",
        "/v1/suppressions",
        "/v1/campaigns/{campaign_id}/messages",
    }


@pytest.mark.parametrize("cursor", list(BAD_CURSORS.values()), ids=list(BAD_CURSORS))
async def test_a_cursor_no_page_handed_out_is_422_on_every_list_route(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], cursor: str
) -> None:
    failures = []
    for template, path, _ in list_routes(app):
        response = await client.get(path, params={"cursor": cursor}, headers=admin)
        try:
            assert_envelope(response, 422, f"{template} cursor={cursor!r}")
            details = response.json()["error"]["details"]
            assert any(d["path"] == ["query", "cursor"] for d in details), details
        except AssertionError as exc:
            failures.append(str(exc))
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("limit", BAD_LIMITS)
async def test_a_limit_out_of_range_is_422_on_every_list_route(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str], limit: str
) -> None:
    for template, path, _ in list_routes(app):
        response = await client.get(path, params={"limit": limit}, headers=admin)
        assert_envelope(response, 422, f"{template} limit={limit!r}")
        assert response.json()["error"]["details"][0]["path"] == ["query", "limit"]


async def _campaign(client: httpx.AsyncClient, admin: dict[str, str]) -> int:
    tpl = await client.post(
        "/v1/templates",
        headers=admin,
        json={"name": "t", "subject": "s", "html": "<p>x</p>" + factories.FOOTER},
    )
    seg = await client.post(
        "/v1/segments",
        headers=admin,
        json={"name": "s", "filter": {"field": "email", "op": "ends_with", "value": "@x.test"}},
    )
    camp = await client.post(
        "/v1/campaigns",
        headers=admin,
        json={
            "name": "c",
            "template_id": tpl.json()["id"],
            "segment_id": seg.json()["id"],
            "from_address": "news@mailer.test",
        },
    )
    assert camp.status_code == 201, camp.text
    return int(camp.json()["id"])


async def test_cursors_of_the_shape_pages_hand_out_are_answered(
    app: FastAPI, client: httpx.AsyncClient, admin: dict[str, str]
) -> None:
    campaign_id = await _campaign(client, admin)
    hook = await client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/"}, headers=admin
    )
    assert hook.status_code == 201, hook.text
    contact = await client.put("/v1/contacts/ada@example.test", json={}, headers=admin)
    assert contact.status_code in (200, 201), contact.text
    good = {"id": ["0", "1", "9223372036854775807"], "key": [key_cursor("ada@example.test")]}
    for template, path, kind in list_routes(app):
        if "{campaign_id}" in template:
            path = template.replace("{campaign_id}", str(campaign_id))
        if "{endpoint_id}" in template:
            path = template.replace("{endpoint_id}", str(hook.json()["id"]))
        if "{email}" in template:
            path = template.replace("{email}", "ada@example.test")
        for cursor in good[kind or "id"]:
            response = await client.get(
                path, params={"cursor": cursor, "limit": 1000}, headers=admin
            )
            assert response.status_code == 200, f"{template} {cursor}: {response.text}"
            assert response.json()["next_cursor"] is None
