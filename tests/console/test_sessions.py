"""The console's sign-in rules: invitation and reset links are single-use and expire,
sign-in is rate-limited per account and per address, sessions live on the server (logout,
password change, an admin and disabling end them), every form needs the session's CSRF
token, cookies are HttpOnly and SameSite=Strict (and Secure behind https)."""

from __future__ import annotations

import subprocess
import sys

from sqlalchemy import text

from mailer.config import ROOT
from mailer.console.web import COOKIE
from mailer.queues import TRANSACTIONAL_QUEUE
from tests.console.helpers import (
    PASSWORD,
    form_csrf,
    invite,
    make_person,
    session_csrf,
    sign_in,
    token_of,
)
from tests.fixtures.api import api_client


async def _live_sessions(engine) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return int(
            (
                await conn.execute(
                    text(
                        "SELECT count(*) FROM web_sessions WHERE ended_at IS NULL"
                        " AND subject_kind = 'person'"
                    )
                )
            ).scalar_one()
        )


async def test_an_invitation_sets_the_password_once_and_signs_in(  # type: ignore[no-untyped-def]
    client, sessionmaker, settings, engine
) -> None:
    link = await invite(sessionmaker, settings, "Ada@Example.test", "marketer")
    assert link.startswith("http://mailer.test/console/invitation/")
    path = link.removeprefix("http://mailer.test")
    page = await client.get(path)
    assert page.status_code == 200 and "ada@example.test" in page.text

    # too short: refused, the link still works
    r = await client.post(path, data={"password": "short", "again": "short"})
    assert r.status_code == 422 and "at least 12" in r.text
    r = await client.post(path, data={"password": PASSWORD, "again": PASSWORD})
    assert r.status_code == 303 and r.headers["location"] == "/console"
    assert (await client.get("/console")).status_code == 200

    # used up: the page and the form refuse it
    other = type(client)(transport=client._transport, base_url=client.base_url)
    async with other:
        assert (await other.get(path)).status_code == 404
        r = await other.post(path, data={"password": "another one 123", "again": "another one 123"})
        assert r.status_code == 404
        assert (await sign_in(other, "ada@example.test", "another one 123")).status_code == 401
        assert (await sign_in(other, "ada@example.test")).status_code == 303


async def test_a_reset_link_works_once_and_expires(  # type: ignore[no-untyped-def]
    client, sessionmaker, settings, engine
) -> None:
    await make_person(sessionmaker, settings, "bo@example.test", "viewer")
    assert (await sign_in(client, "bo@example.test")).status_code == 303
    assert await _live_sessions(engine) == 1

    # the same answer for an unknown address, and no link made
    page = await client.get("/console/reset")
    assert page.status_code == 200
    r = await client.post("/console/reset", data={"email": "nobody@example.test"})
    assert r.status_code == 200 and 'id="sent"' in r.text
    async with engine.connect() as conn:
        assert (
            await conn.execute(text("SELECT count(*) FROM person_tokens WHERE purpose = 'reset'"))
        ).scalar() == 0

    from mailer.db import transaction
    from mailer.people import service as people

    async with transaction(sessionmaker) as session:
        link = await people.request_reset(session, settings, None, "BO@example.test")
    assert link is not None and "/console/reset/" in link
    path = link.removeprefix("http://mailer.test")
    assert (await client.get(path)).status_code == 200
    r = await client.post(path, data={"password": "a new password!", "again": "a new password!"})
    assert r.status_code == 303
    # the reset ended the earlier session; the browser that reset has a new one
    assert await _live_sessions(engine) == 1
    assert (await client.get(path)).status_code == 404  # single use
    r = await client.post(path, data={"password": "third password!", "again": "third password!"})
    assert r.status_code == 404

    # an expired link is refused
    async with transaction(sessionmaker) as session:
        expired = await people.request_reset(session, settings, None, "bo@example.test")
    assert expired is not None
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE person_tokens SET expires_at = now() - interval '1 second'"
                " WHERE used_at IS NULL"
            )
        )
    expired_path = expired.removeprefix("http://mailer.test")
    assert (await client.get(expired_path)).status_code == 404
    r = await client.post(
        expired_path, data={"password": "third password!", "again": "third password!"}
    )
    assert r.status_code == 404
    async with api_client(settings) as fresh:
        assert (await sign_in(fresh, "bo@example.test", "a new password!")).status_code == 303


async def test_sign_in_is_rate_limited_per_account_and_per_address(  # type: ignore[no-untyped-def]
    app, sessionmaker, settings, redis
) -> None:
    await make_person(sessionmaker, settings, "cy@example.test", "viewer")
    limited = settings.model_copy(update={"login_max_failures": 3})
    async with api_client(limited) as client:
        for _ in range(3):
            assert (await sign_in(client, "cy@example.test", "wrong password")).status_code == 401
        # the right password is refused too while the account is locked
        r = await sign_in(client, "cy@example.test")
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        # per address: this client's address is past the limit for every account
        r = await sign_in(client, "someone-else@example.test")
        assert r.status_code == 429
        # per account: from another address, the locked account is still refused
        await redis.delete("mailer:login-failures:addr:127.0.0.1")
        keys = [k.decode() for k in await redis.keys("mailer:login-failures:*")]
        assert "mailer:login-failures:key:person:cy@example.test" in keys
        r = await sign_in(client, "cy@example.test")
        assert r.status_code == 429
        await redis.flushdb()
        assert (await sign_in(client, "cy@example.test")).status_code == 303


async def test_sessions_end_at_logout_password_change_and_by_an_admin(  # type: ignore[no-untyped-def]
    client, app, sessionmaker, settings, engine
) -> None:
    dee = await make_person(sessionmaker, settings, "dee@example.test", "marketer")
    await make_person(sessionmaker, settings, "root@example.test", "admin")
    assert (await sign_in(client, "dee@example.test")).status_code == 303
    old_cookie = client.cookies[COOKIE]

    # a second browser of the same person
    async with api_client(settings) as second:
        assert (await sign_in(second, "dee@example.test")).status_code == 303
        assert await _live_sessions(engine) == 2
        page = await second.get("/console/account")
        assert page.text.count('id="session-') == 2  # both listed

        # changing the password ends every other session
        csrf = await session_csrf(client)
        r = await client.post(
            "/console/account/password",
            data={"csrf": csrf, "current": PASSWORD, "new": "changed password"},
        )
        assert r.status_code == 303
        assert (await second.get("/console")).status_code == 303  # signed out
        assert await _live_sessions(engine) == 1
        assert (await client.get("/console")).status_code == 200  # this browser: a new session

    # the old cookie, replayed, is no session
    async with api_client(settings) as replay:
        replay.cookies.set(COOKIE, old_cookie)
        r = await replay.get("/console")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")

    # an admin ends them
    async with api_client(settings) as admin:
        assert (await sign_in(admin, "root@example.test")).status_code == 303
        csrf = await session_csrf(admin)
        r = await admin.post(f"/console/people/{dee}/sessions/end", data={"csrf": csrf})
        assert r.status_code == 303
        assert (await client.get("/console")).status_code == 303
        # disabled: no sign-in at all
        assert (await sign_in(client, "dee@example.test", "changed password")).status_code == 303
        r = await admin.post(f"/console/people/{dee}/disable", data={"csrf": csrf})
        assert r.status_code == 303
        assert (await client.get("/console")).status_code == 303
        assert (await sign_in(client, "dee@example.test", "changed password")).status_code == 401
        audit = await admin.get("/console/audit")
        assert "person.sessions_ended" in audit.text and "person.disabled" in audit.text

    # logout ends the session on the server
    assert (await sign_in(client, "root@example.test")).status_code == 303
    cookie = client.cookies[COOKIE]
    r = await client.post("/console/logout", data={"csrf": await session_csrf(client)})
    assert r.status_code == 303
    client.cookies.set(COOKIE, cookie)
    assert (await client.get("/console")).status_code == 303


async def test_forms_without_the_sessions_csrf_token_are_refused(  # type: ignore[no-untyped-def]
    client, sessionmaker, settings, engine
) -> None:
    await make_person(sessionmaker, settings, "eve@example.test", "admin")
    assert (await sign_in(client, "eve@example.test")).status_code == 303
    good = await session_csrf(client)
    for given in ({}, {"csrf": ""}, {"csrf": good[:-2] + "xx"}):
        r = await client.post(
            "/console/people", data={**given, "email": "x@example.test", "role": "viewer"}
        )
        assert r.status_code == 403 and "CSRF" in r.text
        # the script's header is checked the same way
        r = await client.post(
            "/console/suppressions",
            data={"email": "x@example.test"},
            headers={"X-CSRF-Token": given.get("csrf", "nope")},
        )
        assert r.status_code == 403
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT count(*) FROM people"))).scalar() == 1
        assert (await conn.execute(text("SELECT count(*) FROM suppressions"))).scalar() == 0
    # another session's token is not this session's
    async with api_client(settings) as other:
        await sign_in(other, "eve@example.test")
        theirs = await session_csrf(other)
    assert theirs != good
    r = await client.post(
        "/console/people", data={"csrf": theirs, "email": "x@example.test", "role": "viewer"}
    )
    assert r.status_code == 403
    # the login form has its own token bound to its cookie
    page = await client.get("/console/login")  # signed in: sent on
    async with api_client(settings) as fresh:
        r = await fresh.post(
            "/console/login", data={"email": "eve@example.test", "password": PASSWORD, "csrf": "x"}
        )
        assert r.status_code == 403
    assert page.status_code == 303
    r = await client.post(
        "/console/people", data={"csrf": good, "email": "x@example.test", "role": "viewer"}
    )
    assert r.status_code == 201 and "/console/invitation/" in r.text


async def test_cookies_are_httponly_strict_and_secure_behind_https(  # type: ignore[no-untyped-def]
    client, sessionmaker, settings
) -> None:
    await make_person(sessionmaker, settings, "fay@example.test", "viewer")
    r = await sign_in(client, "fay@example.test")
    cookie = next(
        v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith(COOKIE)
    )
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # http://mailer.test
    https = settings.model_copy(update={"public_url": "https://mailer.test"})
    async with api_client(https) as secure:
        page = await secure.get("/console/login")
        assert "Secure" in page.headers["set-cookie"]
        r = await secure.post(
            "/console/login",
            data={"email": "fay@example.test", "password": PASSWORD, "csrf": form_csrf(page.text)},
            # the client keeps no Secure cookie for http://: sent by hand
            headers={"Cookie": f"mailer_console_login={page.cookies['mailer_console_login']}"},
        )
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


async def test_the_invitation_is_mailed_through_the_transactional_path(  # type: ignore[no-untyped-def]
    sessionmaker, settings, engine, redis
) -> None:
    from arq import create_pool

    from mailer.app import redis_settings
    from mailer.db import transaction
    from mailer.people import service as people

    mailing = settings.model_copy(update={"console_mail_from": "Console <console@mailer.test>"})
    pool = await create_pool(redis_settings(mailing))
    try:
        async with transaction(sessionmaker) as session:
            _, link = await people.create(session, mailing, pool, "gil@example.test", "viewer")
    finally:
        await pool.aclose()
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT email, mail_class, subject, data, status FROM messages")
            )
        ).one()
    assert row.email == "gil@example.test" and row.mail_class == "transactional"
    assert row.subject.startswith("You are invited") and row.data["link"] == link
    assert row.status == "queued"
    assert await redis.zcard(TRANSACTIONAL_QUEUE) == 1  # enqueued after the commit


def test_users_create_prints_a_one_time_link(settings, engine) -> None:  # type: ignore[no-untyped-def]
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "MAILER_DATABASE_URL": settings.database_url,
        "MAILER_REDIS_URL": settings.redis_url,
        "MAILER_SECRET_KEY": settings.secret_key,
        "MAILER_PUBLIC_URL": "https://console.example",
    }
    done = subprocess.run(  # noqa: S603 - our own CLI
        [
            sys.executable,
            "-m",
            "mailer.cli",
            "users",
            "create",
            "--email",
            "Hal@Example.test",
            "--role",
            "operator",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    link = done.stdout.strip().splitlines()[-1]
    assert (
        link.startswith("https://console.example/console/invitation/") and len(token_of(link)) >= 40
    )
    again = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "mailer.cli",
            "users",
            "create",
            "--email",
            "hal@example.test",
            "--role",
            "operator",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert again.returncode == 2 and "has an account already" in again.stderr
    bad = subprocess.run(  # noqa: S603
        [
            sys.executable,
            "-m",
            "mailer.cli",
            "users",
            "create",
            "--email",
            "x@example.test",
            "--role",
            "boss",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2 and "unknown role" in bad.stderr


def test_one_time_links_and_console_cookies_never_reach_the_logs() -> None:
    from mailer.logging import redact_text

    line = (
        '"GET /console/invitation/AbC-123_x HTTP/1.1" 200 '
        "http://mailer.test/console/reset/ZZ9?x=1 Cookie: mailer_console=s1.4.tok.mac;"
        " mailer_console_login=nonce"
    )
    cleaned = redact_text(line)
    for secret in ("AbC-123_x", "ZZ9", "s1.4.tok.mac", "nonce"):
        assert secret not in cleaned
    assert (
        "/console/invitation/[redacted]" in cleaned and "/console/reset/[redacted]?x=1" in cleaned
    )
