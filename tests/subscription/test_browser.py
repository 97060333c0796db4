"""In Debian's Chromium: the hosted form, the confirmation and the preference centre."""

from __future__ import annotations

from tests.fixtures.api import ApiProcess
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, need_chromium
from tests.fixtures.workers import worker_env
from tests.subscription.conftest import confirmation_mails, form, statuses, topic


async def test_form_confirm_and_preferences_in_a_browser(  # type: ignore[no-untyped-def]
    settings, admin, client, engine, tmp_path
) -> None:
    need_chromium()
    from playwright.async_api import async_playwright

    news = await topic(client, admin, "News")
    offers = await topic(client, admin, "Offers", public=True, double_opt_in=False)
    f = await form(client, admin, [news])
    env = worker_env(settings, "http://127.0.0.1:9")
    # the fill-time rule has tests of its own; a script fills a form faster than a person
    env["MAILER_SUBSCRIBE_MIN_FILL_SECONDS"] = "0"
    api = ApiProcess(env, tmp_path / "api.log")
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page()
                await page.goto(f"{api.url}/subscribe/{f['id']}")
                await page.fill("#email", "ada@example.test")
                await page.fill("#f-first_name", "Ada")
                await page.click("button[type=submit]")
                await page.locator("#message").wait_for()
                assert await statuses(engine, "ada@example.test") == {news: "unconfirmed"}
                [(_, url)] = await confirmation_mails(engine, "ada@example.test")
                path = url.split("/confirm/", 1)[1]
                await page.goto(f"{api.url}/confirm/{path}")
                await page.click("#confirm")
                await page.locator("#preferences").click()
                await page.locator("#prefs").wait_for()
                assert await page.is_checked(f"input[value='{news}']")
                await page.uncheck(f"input[value='{news}']")
                await page.check(f"input[value='{offers}']")
                await page.click("#save")
                await page.locator("#message").wait_for()
                assert await statuses(engine, "ada@example.test") == {
                    news: "unsubscribed",
                    offers: "subscribed",
                }
            finally:
                await browser.close()
    finally:
        api.stop()
