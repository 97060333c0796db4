"""Topics and forms in Debian's Chromium: a marketer creates a topic and a signup form in the
console, copies its snippet, opens its hosted page and signs up through it. Each page is
photographed (tests/fixtures/browser.screenshot_path: docs/console/ with
MAILER_SCREENSHOTS=1)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mailer.config import Settings
from tests.console.helpers import make_person
from tests.console.test_browser import _shot, _sign_in
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, need_chromium
from tests.ops.test_dashboard import _serve
from tests.subscription.conftest import confirmation_mails, statuses


@pytest.fixture
async def quick_app(settings: Settings, engine) -> AsyncIterator[object]:  # type: ignore[no-untyped-def]
    """The app, but a signup may come as soon as the form is shown: the fill-time rule has
    tests of its own, and a script fills a form faster than a person."""
    from mailer.app import create_app

    application = create_app(settings.model_copy(update={"subscribe_min_fill_seconds": 0.0}))
    async with application.router.lifespan_context(application):
        yield application


async def test_a_topic_and_a_form_made_in_the_console_take_a_signup(  # type: ignore[no-untyped-def]
    quick_app, sessionmaker, settings, engine
) -> None:
    need_chromium()
    from playwright.async_api import async_playwright, expect

    await make_person(sessionmaker, settings, "mia@example.test", "marketer")
    async with _serve(quick_app) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            await _sign_in(page, base, "mia@example.test")

            # -- a topic, from the navigation ---------------------------------------
            await page.click("nav >> text=Topics")
            await page.wait_for_url(f"{base}/console/topics")
            await page.fill("#name", "Weekly newsletter")
            await page.fill("#description", "Every Monday, the week's news.")
            await page.check("#public")
            await page.click("#create-topic")
            await page.wait_for_url(f"{base}/console/topics")
            row = page.locator("#topics tbody tr", has_text="Weekly newsletter")
            await expect(row.locator("td.subscribed")).to_have_text("0")
            topic_id = int((await row.get_attribute("id") or "").removeprefix("topic-"))
            await _shot(page, "topics")

            # -- a form offering it ---------------------------------------------------
            await page.click("nav >> text=Forms")
            await page.click("#new-form")
            await page.fill("#name", "Footer signup")
            await page.check(f"#topic-{topic_id}")
            await page.fill("#fields", "first_name")
            await page.fill("#consent_text", "Send me the weekly newsletter.")
            await page.fill("#from_address", "News <news@mailer.test>")
            await page.click("#save-form")
            await page.wait_for_url(f"{base}/console/forms/*")
            form_id = int(page.url.rsplit("/", 1)[1])
            snippet = await page.input_value("#embed")
            assert snippet.startswith("<iframe") and f"/subscribe/{form_id}" in snippet
            await _shot(page, "form")

            # -- its hosted page takes a signup ------------------------------------------
            hosted = await page.get_attribute("#hosted", "href")
            assert hosted == f"/subscribe/{form_id}"
            await page.goto(f"{base}{hosted}")
            await expect(page.locator("h1")).to_have_text("Footer signup")
            await page.fill("#email", "ada@example.test")
            await page.fill("#f-first_name", "Ada")
            await _shot(page, "hosted-form")
            await page.click("button[type=submit]")
            await page.locator("#message").wait_for()
            assert await statuses(engine, "ada@example.test") == {topic_id: "unconfirmed"}
            assert len(await confirmation_mails(engine, "ada@example.test")) == 1

            # -- the contact's page shows it ---------------------------------------------
            await page.goto(f"{base}/console/contacts/ada@example.test")
            await expect(page.locator(f"#contact-topic-{topic_id}")).to_contain_text("unconfirmed")
            await expect(page.locator("#consent")).to_contain_text("form")
            await _shot(page, "contact-topics")
            assert errors == []
        finally:
            await browser.close()
