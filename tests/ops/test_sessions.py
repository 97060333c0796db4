"""Dashboard sign-in hardening: sessions are rows on the server (logout and revoking the key
end them), cookies and CSRF tokens verify with every listed secret key and no other, the
login form carries a CSRF token, failed logins are rate-limited in Redis."""

from __future__ import annotations

from sqlalchemy import text

from mailer.auth import sessions
from mailer.ops.dashboard import COOKIE, LOGIN_COOKIE
from mailer.secrets import new_key
from tests.fixtures.api import api_client
from tests.ops.test_dashboard import _csrf, _login


async def _session_rows(engine) -> list[tuple[int, bool]]:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        rows = await conn.execute(text("SELECT id, ended_at IS NOT NULL FROM web_sessions"))
        return [(int(i), bool(ended)) for i, ended in rows]


async def test_logout_ends_the_session_on_the_server(client, make_key, engine) -> None:  # type: ignore[no-untyped-def]
    assert (await _login(client, await make_key("reputation"))).status_code == 303
    cookie = client.cookies[COOKIE]
    assert "." in cookie and len(await _session_rows(engine)) == 1
    csrf = _csrf((await client.get("/dashboard")).text)
    assert (await client.post("/dashboard/logout", data={"csrf": csrf})).status_code == 303
    assert [ended for _, ended in await _session_rows(engine)] == [True]

    # the old cookie, replayed, is no session
    client.cookies.set(COOKIE, cookie, path="/dashboard")
    r = await client.get("/dashboard")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"


async def test_revoking_the_key_ends_its_sessions(client, make_key, admin, engine) -> None:  # type: ignore[no-untyped-def]
    await _login(client, await make_key("reputation", name="ops"))
    assert (await client.get("/dashboard")).status_code == 200
    async with engine.connect() as conn:
        key_id = (await conn.execute(text("SELECT id FROM api_keys WHERE name = 'ops'"))).scalar()
    assert (await client.delete(f"/v1/keys/{key_id}", headers=admin)).status_code == 204
    assert [ended for _, ended in await _session_rows(engine)] == [True]
    assert (await client.get("/dashboard")).status_code == 303


async def test_forged_cookies_are_refused(client, make_key, settings, engine) -> None:  # type: ignore[no-untyped-def]
    await _login(client, await make_key("admin"))
    ((session_id, _),) = await _session_rows(engine)
    _, token = sessions.unseal(settings, client.cookies[COOKIE]) or (0, "")
    forgeries = {
        # the attack: a session signed with the published default key
        "published default": sessions.seal(
            settings.model_copy(update={"secret_key": "dev-secret-change-me"}), session_id, token
        ),
        # the row's id with a guessed token, even signed with the real key
        "guessed token": sessions.seal(settings, session_id, "guessed"),
        "another id": sessions.seal(settings, session_id + 1, token),
        "the old cookie format": f"v1.1.9999999999.{token}.{'0' * 64}",
    }
    for what, forged in forgeries.items():
        client.cookies.set(COOKIE, forged, path="/dashboard")
        assert (await client.get("/dashboard")).status_code == 303, what


async def test_a_rotated_key_keeps_sessions_and_a_removed_key_ends_them(  # type: ignore[no-untyped-def]
    client, make_key, settings, redis
) -> None:
    await _login(client, await make_key("admin"))
    old_cookie = client.cookies[COOKIE]
    old_csrf = _csrf((await client.get("/dashboard")).text)
    new = new_key()
    rotated = settings.model_copy(update={"secret_keys": [new, settings.secret_key]})
    removed = settings.model_copy(update={"secret_keys": [new], "secret_key": ""})

    async with api_client(rotated) as c:
        c.cookies.set(COOKIE, old_cookie, path="/dashboard")
        page = await c.get("/dashboard")
        assert page.status_code == 200
        # forms rendered now carry a token of the new key; the old page's token still works
        assert _csrf(page.text) != old_csrf
        r = await c.post("/dashboard/campaigns/1/pause", data={"csrf": old_csrf})
        assert r.status_code == 404 and "no campaign" in r.text.lower()  # past the CSRF check
        # a session begun after the rotation is signed with the new key
        c.cookies.clear()
        await _login(c, await make_key("reputation"))
        new_cookie = c.cookies[COOKIE]

    async with api_client(removed) as c:
        c.cookies.set(COOKIE, old_cookie, path="/dashboard")
        assert (await c.get("/dashboard")).status_code == 303
        c.cookies.set(COOKIE, new_cookie, path="/dashboard")
        assert (await c.get("/dashboard")).status_code == 200


async def test_the_login_form_needs_its_csrf_token(client, make_key, engine) -> None:  # type: ignore[no-untyped-def]
    key = await make_key("admin")
    # a cross-site form post: no login cookie, no token
    r = await client.post("/dashboard/login", data={"key": key})
    assert r.status_code == 403 and COOKIE not in client.cookies
    # a token taken from another browser's login page does not fit this browser's cookie
    async with api_client(client._transport.app.state.settings) as other:  # type: ignore[attr-defined]
        foreign = _csrf((await other.get("/dashboard/login")).text)
    await client.get("/dashboard/login")
    assert LOGIN_COOKIE in client.cookies
    r = await client.post("/dashboard/login", data={"key": key, "csrf": foreign})
    assert r.status_code == 403 and COOKIE not in client.cookies
    assert await _session_rows(engine) == []
    # the form as served
    assert (await _login(client, key)).status_code == 303


async def test_failed_logins_are_rate_limited_per_address_and_per_key(  # type: ignore[no-untyped-def]
    make_key, settings, redis
) -> None:
    limited = settings.model_copy(
        update={"login_max_failures": 3, "login_failure_window_seconds": 600}
    )
    good = await make_key("reputation")
    async with api_client(limited, "10.0.0.1") as c:
        for _ in range(3):
            assert (await _login(c, "mk_0123456789ab_wrong")).status_code == 401
        r = await _login(c, good)  # the right key too: the refusal must not be a hint
        assert r.status_code == 429
        assert "Too many failed logins" in r.text and 0 < int(r.headers["retry-after"]) <= 600
    async with api_client(limited, "10.0.0.2") as c:
        assert (await _login(c, good)).status_code == 303  # another address is not blocked

    # guesses at one key's secret from many addresses: that key prefix is blocked
    prefix = good.split("_")[1]
    for n in range(3):
        async with api_client(limited, f"10.0.1.{n}") as c:
            assert (await _login(c, f"mk_{prefix}_guess{n}")).status_code == 401
    async with api_client(limited, "10.0.2.1") as c:
        assert (await _login(c, good)).status_code == 429
        assert (await _login(c, await make_key("reputation"))).status_code == 303
