"""Role checks on every console route: a table of what each role may do, checked for every
route and every role (allowed: answered, whatever the answer; refused: 403 and nothing
done), and every route without a sign-in (a page sends to the sign-in form, a POST is a
401). The table must name exactly the routes the app has."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from mailer.console.web import ROUTES
from tests import factories
from tests.auth.test_auth import _routes
from tests.console.helpers import make_person, session_csrf, sign_in
from tests.fixtures.api import api_client
from tests.subscription.conftest import form, topic

ALL = {"admin", "marketer", "operator", "viewer"}
EDITORS = {"admin", "marketer"}
PAUSERS = {"admin", "marketer", "operator"}
ADMINS = {"admin"}
PUBLIC = None  # no sign-in needed

# (method, path) → the roles allowed
TABLE: dict[tuple[str, str], set[str] | None] = {
    ("GET", "/console"): ALL,
    ("GET", "/console/static/console.js"): PUBLIC,
    ("GET", "/console/login"): PUBLIC,
    ("POST", "/console/login"): PUBLIC,
    ("POST", "/console/logout"): ALL,
    ("GET", "/console/invitation/{token}"): PUBLIC,
    ("POST", "/console/invitation/{token}"): PUBLIC,
    ("GET", "/console/reset"): PUBLIC,
    ("POST", "/console/reset"): PUBLIC,
    ("GET", "/console/reset/{token}"): PUBLIC,
    ("POST", "/console/reset/{token}"): PUBLIC,
    ("GET", "/console/account"): ALL,
    ("POST", "/console/account/password"): ALL,
    ("POST", "/console/account/sessions/{session_id}/end"): ALL,
    ("GET", "/console/people"): ADMINS,
    ("POST", "/console/people"): ADMINS,
    ("POST", "/console/people/{person_id}/role"): ADMINS,
    ("POST", "/console/people/{person_id}/sessions/end"): ADMINS,
    ("POST", "/console/people/{person_id}/disable"): ADMINS,
    ("GET", "/console/audit"): ADMINS,
    ("GET", "/console/contacts"): ALL,
    ("GET", "/console/contacts/{email}"): ALL,
    ("POST", "/console/contacts/{email}"): EDITORS,
    ("POST", "/console/contacts/{email}/unsubscribe"): EDITORS,
    ("GET", "/console/contacts/{email}/erase"): EDITORS,
    ("POST", "/console/contacts/{email}/erase"): EDITORS,
    ("GET", "/console/imports/new"): EDITORS,
    ("POST", "/console/imports"): EDITORS,
    ("GET", "/console/imports/{import_id}"): ALL,
    ("GET", "/console/imports/{import_id}/status"): ALL,
    ("GET", "/console/imports/{import_id}/rejected.csv"): ALL,
    ("GET", "/console/segments"): ALL,
    ("GET", "/console/segments/new"): EDITORS,
    ("GET", "/console/segments/{segment_id}"): ALL,
    ("GET", "/console/segments/{segment_id}/count"): ALL,
    ("POST", "/console/segments"): EDITORS,
    ("POST", "/console/segments/preview"): ALL,  # reads only
    ("POST", "/console/segments/{segment_id}"): EDITORS,
    ("GET", "/console/templates"): ALL,
    ("GET", "/console/templates/new"): EDITORS,
    ("POST", "/console/templates"): EDITORS,
    ("POST", "/console/templates/preview"): ALL,  # reads only
    ("GET", "/console/templates/{template_id}"): ALL,
    ("POST", "/console/templates/{template_id}"): EDITORS,
    ("POST", "/console/templates/{template_id}/test"): EDITORS,
    ("GET", "/console/campaigns"): ALL,
    ("GET", "/console/campaigns/new"): EDITORS,
    ("POST", "/console/campaigns"): EDITORS,
    ("GET", "/console/campaigns/{campaign_id}"): ALL,
    ("GET", "/console/campaigns/{campaign_id}/status"): ALL,
    ("POST", "/console/campaigns/{campaign_id}/test"): EDITORS,
    ("POST", "/console/campaigns/{campaign_id}/launch"): EDITORS,
    ("POST", "/console/campaigns/{campaign_id}/pause"): PAUSERS,
    ("POST", "/console/campaigns/{campaign_id}/resume"): PAUSERS,
    ("POST", "/console/campaigns/{campaign_id}/cancel"): EDITORS,
    ("GET", "/console/suppressions"): ALL,
    ("POST", "/console/suppressions"): EDITORS,
    ("POST", "/console/suppressions/{email}/remove"): EDITORS,
    ("POST", "/console/suppressions/import"): EDITORS,
    ("GET", "/console/topics"): ALL,
    ("POST", "/console/topics"): EDITORS,
    ("GET", "/console/topics/{topic_id}"): ALL,
    ("POST", "/console/topics/{topic_id}"): EDITORS,
    ("GET", "/console/forms"): ALL,
    ("GET", "/console/forms/new"): EDITORS,
    ("POST", "/console/forms"): EDITORS,
    ("GET", "/console/forms/{form_id}"): ALL,
    ("POST", "/console/forms/{form_id}"): EDITORS,
    ("POST", "/console/contacts/{email}/topics"): EDITORS,
}

# what a refused change would have changed: nothing of it may change
STATE_SQL = (
    "SELECT (SELECT count(*) FROM people), (SELECT count(*) FROM segments),"
    " (SELECT count(*) FROM template_versions), (SELECT count(*) FROM campaigns),"
    " (SELECT string_agg(status, ',' ORDER BY id) FROM campaigns),"
    " (SELECT count(*) FROM suppressions), (SELECT count(*) FROM contacts),"
    " (SELECT string_agg(status || attributes::text, ',' ORDER BY id) FROM contacts),"
    " (SELECT count(*) FROM contact_imports), (SELECT count(*) FROM messages),"
    " (SELECT string_agg(role, ',' ORDER BY id) FROM people),"
    " (SELECT string_agg(name || public || double_opt_in, ',' ORDER BY id) FROM topics),"
    " (SELECT string_agg(name || version, ',' ORDER BY id) FROM forms),"
    " (SELECT count(*) FROM topic_changes)"
)


async def test_the_table_names_every_console_route(app) -> None:  # type: ignore[no-untyped-def]
    served = {
        (method, route.path)
        for route in _routes(app)
        if (getattr(route, "path", None) or "").startswith("/console")
        for method in getattr(route, "methods", None) or ()
    }
    assert served == set(TABLE) == set(ROUTES)


async def _state(engine) -> tuple:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return tuple((await conn.execute(text(STATE_SQL))).one())


@pytest.fixture
async def world(client, admin, sessionmaker, settings):  # type: ignore[no-untyped-def]
    """One of everything a route's path can name."""
    await factories.contacts(client, admin, 2, prefix="c")
    campaign = await factories.campaign(client, admin, send_at="2099-01-01T00:00:00Z")
    r = await client.post(
        "/v1/contacts/imports",
        headers={**admin, "Content-Type": "text/csv"},
        content=b"email\nnew@example.test\nnot-an-address\n",
    )
    assert r.status_code == 202
    imported = r.json()["id"]
    r = await client.put("/v1/suppressions/gone@example.test", headers=admin, json={})
    assert r.status_code in (200, 201)
    target = await make_person(sessionmaker, settings, "target@example.test", "viewer")
    news = await topic(client, admin, "News")
    signup = await form(client, admin, [news])
    return {
        "token": "not-a-token",
        "session_id": "999999",
        "person_id": str(target),
        "email": "c0@example.test",
        "import_id": str(imported),
        "segment_id": str(campaign["segment_id"]),
        "template_id": str(campaign["template_id"]),
        "campaign_id": str(campaign["id"]),
        "topic_id": str(news),
        "form_id": str(signup["id"]),
    }


def _path(path: str, world: dict[str, str]) -> str:
    for name, value in world.items():
        path = path.replace("{" + name + "}", value)
    return path


async def _call(client, method, path, csrf):  # type: ignore[no-untyped-def]
    if method == "GET":
        return await client.get(path)
    if path.endswith(("/preview",)):
        return await client.post(
            path,
            json={"filter": {"all": []}, "subject": "s", "html": "h"},
            headers={"X-CSRF-Token": csrf, "Accept": "application/json"},
        )
    if path.endswith(("/imports", "/import")):
        return await client.post(
            path,
            content=b"email\nz@example.test\n",
            headers={"X-CSRF-Token": csrf, "Content-Type": "text/csv"},
        )
    return await client.post(path, data={"csrf": csrf})


@pytest.mark.parametrize("role", sorted(ALL))
async def test_every_route_checks_the_role(  # type: ignore[no-untyped-def]
    role, app, client, world, sessionmaker, settings, engine
) -> None:
    await make_person(sessionmaker, settings, f"{role}@example.test", role)
    async with api_client(settings) as browser:
        assert (await sign_in(browser, f"{role}@example.test")).status_code == 303
        csrf = await session_csrf(browser)
        # logout last: it ends the session the others need
        order = sorted(TABLE, key=lambda route: route == ("POST", "/console/logout"))
        for method, template in order:
            allowed = TABLE[(method, template)]
            if allowed is None:
                continue
            path = _path(template, world)
            before = await _state(engine)
            r = await _call(browser, method, path, csrf)
            what = f"{role} {method} {path}: {r.status_code} {r.text[:200]}"
            if role in allowed:
                assert r.status_code not in (401, 403, 500), what
                if r.status_code == 303:
                    assert not r.headers["location"].startswith("/console/login") or path.endswith(
                        ("/logout",)
                    ), what
            else:
                assert r.status_code == 403, what
                assert "does not allow" in r.text, what
                assert await _state(engine) == before, what


async def test_without_a_sign_in_pages_send_to_it_and_posts_are_refused(  # type: ignore[no-untyped-def]
    client, world, engine
) -> None:
    for (method, template), allowed in TABLE.items():
        if allowed is None:
            continue
        path = _path(template, world)
        before = await _state(engine)
        r = await _call(client, method, path, "x")
        if method == "GET" and not path.endswith(("/status", "/count")):
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/console/login?next="), path
        else:
            assert r.status_code in (303, 401), path
        assert await _state(engine) == before, path
