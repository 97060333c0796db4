"""The interactive docs work: Swagger UI in headless Chromium, with nothing but the API on
loopback to load from, authorises with a key and sends a request with "Try it out"."""

from __future__ import annotations

from tests.fixtures.api import ApiProcess
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, need_chromium
from tests.fixtures.workers import worker_env


async def test_swagger_ui_sends_an_authorised_request(settings, admin, admin_key, client, tmp_path):  # type: ignore[no-untyped-def]
    need_chromium()
    from playwright.async_api import async_playwright

    r = await client.post(
        "/v1/segments", headers=admin, json={"name": "from the docs", "filter": {"all": []}}
    )
    assert r.status_code == 201
    api = ApiProcess(worker_env(settings, "http://127.0.0.1:9"), tmp_path / "api.log")
    outside: list[str] = []
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 1000})
                page.on(
                    "request",
                    lambda req: None if req.url.startswith(api.url) else outside.append(req.url),
                )
                await page.goto(f"{api.url}/docs")
                await page.locator("button.authorize").first.click()
                await page.locator(".modal-ux input").first.fill(admin_key)
                await page.locator(".modal-ux .auth-btn-wrapper button.authorize").click()
                await page.locator(".modal-ux button.btn-done").click()
                summary = page.locator(
                    ".opblock-get .opblock-summary:has([data-path='/v1/segments'])"
                )
                await summary.click()
                block = page.locator(".opblock-get.is-open")
                await block.locator("button.try-out__btn").click()
                await block.locator("button.execute").click()
                status = block.locator(".live-responses-table tbody .response-col_status")
                await status.first.wait_for(timeout=20_000)
                assert (await status.first.inner_text()).strip() == "200"
                body = await block.locator(".live-responses-table .microlight").first.inner_text()
                assert "from the docs" in body
                curl = await block.locator(".curl-command").inner_text()
                assert "Authorization: Bearer" in curl
            finally:
                await browser.close()
    finally:
        api.stop()
    assert outside == [], f"the docs page reached outside the API: {outside}"
