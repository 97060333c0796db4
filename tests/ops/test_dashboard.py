"""/dashboard: login with a reputation or admin key into a signed cookie, CSRF-checked
forms, charts with data, pause and resume, logout; driven in headless Chromium too."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator

import uvicorn
from sqlalchemy import text

from mailer.ops.dashboard import COOKIE
from tests import factories
from tests.campaign.conftest import seed_contacts
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, need_chromium, screenshot_path
from tests.reputation.helpers import campaign_for, notify, sent_messages, wait_processed


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


async def _login(client, key: str):  # type: ignore[no-untyped-def]
    """Log in as a browser does: the login page (its CSRF token and cookie), then the form."""
    page = await client.get("/dashboard/login")
    return await client.post("/dashboard/login", data={"key": key, "csrf": _csrf(page.text)})


async def test_login_cookie_scopes_csrf_and_logout(client, make_key, engine) -> None:  # type: ignore[no-untyped-def]
    r = await client.get("/dashboard")
    assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
    assert (await _login(client, "mk_nope_nope")).status_code == 401
    assert (await _login(client, await make_key("campaigns"))).status_code == 403
    assert COOKIE not in client.cookies

    r = await _login(client, await make_key("reputation", name="ops"))
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
    assert "mk_" not in cookie  # the session names the key, it never holds it
    page = await client.get("/dashboard")
    assert page.status_code == 200 and "ops (reputation)" in page.text
    assert "Pause</button>" not in page.text  # read-only scope: no actions

    # a forged or altered cookie is no session
    good = client.cookies[COOKIE]
    client.cookies.set(COOKIE, good[:-1] + ("0" if good[-1] != "0" else "1"), path="/dashboard")
    assert (await client.get("/dashboard")).status_code == 303
    client.cookies.set(COOKIE, good, path="/dashboard")

    # forms need the session's CSRF token
    assert (await client.post("/dashboard/logout", data={})).status_code == 403
    assert (await client.post("/dashboard/logout", data={"csrf": "x" * 40})).status_code == 403
    assert (await client.get("/dashboard")).status_code == 200
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE api_keys SET revoked_at = now() WHERE name = 'ops'"))
    assert (await client.get("/dashboard")).status_code == 303  # a revoked key ends it


async def test_actions_need_admin_and_the_token(client, make_key, admin, engine) -> None:  # type: ignore[no-untyped-def]
    await seed_contacts(engine, 3)
    campaign = await factories.campaign(client, admin, send_at="2099-01-01T00:00:00Z")
    cid = campaign["id"]
    assert (await client.post(f"/v1/campaigns/{cid}/send", headers=admin)).status_code == 202

    await _login(client, await make_key("reputation"))
    csrf = _csrf((await client.get("/dashboard")).text)
    r = await client.post(f"/dashboard/campaigns/{cid}/pause", data={"csrf": csrf})
    assert r.status_code == 403
    client.cookies.clear()

    await _login(client, await make_key("admin", name="boss"))
    csrf = _csrf((await client.get("/dashboard")).text)
    r = await client.post(f"/dashboard/campaigns/{cid}/pause", data={})
    assert r.status_code == 403
    assert (await client.get(f"/v1/campaigns/{cid}", headers=admin)).json()["status"] == "scheduled"
    r = await client.post(f"/dashboard/campaigns/{cid}/pause", data={"csrf": csrf})
    assert r.status_code == 303
    body = (await client.get(f"/v1/campaigns/{cid}", headers=admin)).json()
    assert body["status"] == "paused" and body["paused_reason"] == "paused from the dashboard"
    r = await client.post(f"/dashboard/campaigns/{cid}/pause", data={"csrf": csrf})
    assert r.status_code == 409 and "cannot pause" in r.text


@contextlib.asynccontextmanager
async def _serve(app) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def test_dashboard_in_headless_chromium(  # type: ignore[no-untyped-def]
    app, client, admin, admin_key, engine, sns_signer, clean_standin, start_worker
):
    need_chromium()
    from playwright.async_api import async_playwright

    await seed_contacts(engine, 40, prefix="user")
    start_worker(MAILER_REGIONS="us-east-1=100")
    sent_cid = await campaign_for(client, admin, "user")
    await factories.wait_for_status(client, admin, sent_cid, {"completed"}, 60)
    messages = await sent_messages(engine, sent_cid, 40)
    ids = [await notify(client, sns_signer, "Bounce", sid, email) for sid, email in messages[:3]]
    ids.append(await notify(client, sns_signer, "Complaint", *messages[3]))
    ids += [await notify(client, sns_signer, "Delivery", sid, email) for sid, email in messages[4:]]
    await wait_processed(engine, ids)
    later = await campaign_for(client, admin, "user", send_at="2099-01-01T00:00:00Z")

    async with _serve(app) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 1100})
            await page.goto(f"{base}/dashboard")
            assert page.url.endswith("/dashboard/login")
            await page.fill("#key", admin_key)
            await page.click("#login")
            await page.wait_for_url(f"{base}/dashboard")
            cookies = {c["name"]: c for c in await page.context.cookies()}
            assert cookies[COOKIE]["httpOnly"] and cookies[COOKIE]["sameSite"] == "Strict"

            # charts with data: the send-rate chart and the marketing bounce-rate chart
            assert await page.locator("#chart-1 rect.bar").count() >= 1
            bounce = page.locator("svg[aria-label^='Bounce rate of marketing'] rect.bar")
            assert await bounce.count() >= 1
            assert float(await bounce.last.get_attribute("data-value") or 0) == 3 / 40
            assert (
                await page.locator(
                    "svg[aria-label^='Bounce rate of marketing'] line.threshold"
                ).count()
                == 1
            )
            row = page.locator(f"#campaign-{sent_cid}")
            assert await row.get_attribute("data-status") == "completed"
            assert "100.0 %" in await row.inner_text()
            assert "HEALTHY" in await page.locator("#region-us-east-1").inner_text()

            # pause and resume
            await page.locator(f"#campaign-{later} button.pause").click()
            await page.wait_for_url(f"{base}/dashboard")
            target = page.locator(f"#campaign-{later}")
            assert await target.get_attribute("data-status") == "paused"
            assert "paused from the dashboard" in await target.inner_text()
            await page.screenshot(path=str(screenshot_path("dashboard.png")), full_page=True)
            await page.locator(f"#campaign-{later} button.resume").click()
            await page.wait_for_url(f"{base}/dashboard")
            assert (
                await page.locator(f"#campaign-{later}").get_attribute("data-status") == "scheduled"
            )

            # logout: the session is gone
            await page.click("#logout")
            await page.wait_for_url(f"{base}/dashboard/login")
            await page.goto(f"{base}/dashboard")
            assert page.url.endswith("/dashboard/login")
            assert COOKIE not in {c["name"] for c in await page.context.cookies()}
        finally:
            await browser.close()
