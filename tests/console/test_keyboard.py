"""Every console page works with a keyboard (headless Debian Chromium, no mouse): sign in,
the menu, a contact (edited), a CSV import's page, a segment's rule built condition by
condition, a template written and saved, a campaign through the wizard and its test send,
a suppression added, signing out, with Tab, Shift+Tab, Enter, Space and typing only. At
every stop the focus is visible (``:focus-visible`` with an outline), and on every page
each control has an accessible name (a label, ``aria-label`` or ``aria-labelledby``)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from tests.console.helpers import PASSWORD, invite, make_person
from tests.fixtures.browser import CHROMIUM, CHROMIUM_ARGS, need_chromium
from tests.ops.test_dashboard import _serve

MAX_TABS = 80

# the focused element and how its focus shows
_FOCUS = """() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const s = getComputedStyle(el);
  return {
    html: el.outerHTML.slice(0, 160),
    visible: el.matches(":focus-visible"),
    outline: s.outlineStyle !== "none" && parseFloat(s.outlineWidth) >= 2,
    shadow: s.boxShadow !== "none",
  };
}"""

# every control without an accessible name
_UNLABELLED = """() => {
  const text = (el) => (el ? el.textContent.trim() : "");
  const named = (el) =>
    (el.getAttribute("aria-label") || "").trim() ||
    (el.getAttribute("aria-labelledby") || "").split(/\\s+/).filter(Boolean)
      .map((id) => text(document.getElementById(id))).join("") ||
    [...(el.labels || [])].map(text).join("") ||
    (el.tagName === "BUTTON" ? text(el) : "") ||
    (el.tagName === "IFRAME" ? (el.getAttribute("title") || "").trim() : "");
  return [...document.querySelectorAll(
    "input:not([type=hidden]), select, textarea, button, iframe, progress"
  )].filter((el) => !named(el)).map((el) => el.outerHTML.slice(0, 160));
}"""


async def _labelled(page: Any) -> None:
    missing = await page.evaluate(_UNLABELLED)
    assert missing == [], f"{page.url}: controls without a label: {missing}"


async def _tab_to(page: Any, selector: str, *, back: bool = False) -> None:
    """Tab (Shift+Tab when ``back``) until ``selector`` has the focus; every element the
    focus stops at on the way shows it."""
    key = "Shift+Tab" if back else "Tab"
    for _ in range(MAX_TABS):
        await page.keyboard.press(key)
        focus = await page.evaluate(_FOCUS)
        if focus is None:
            continue
        # an outline (or a shadow) drawn while the element has the focus; a date input's
        # focus is in its own fields, where :focus-visible does not match the input
        assert focus["outline"] or focus["shadow"], f"{page.url}: focus not visible on {focus}"
        if await page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"{page.url}: {selector} not reached in {MAX_TABS} presses of {key}")


async def _tab_through(page: Any) -> int:
    """Tab from the top of the page past its last control: each stop shows its focus. How
    many stops there were."""
    seen: list[str] = []
    for _ in range(MAX_TABS * 2):
        await page.keyboard.press("Tab")
        focus = await page.evaluate(_FOCUS)
        if focus is None:
            if seen:
                return len(seen)
            continue
        if focus["html"] in seen[:1]:
            return len(seen)
        assert focus["outline"] or focus["shadow"], f"{page.url}: focus not visible on {focus}"
        seen.append(focus["html"])
    raise AssertionError(f"{page.url}: the focus never left the page")


async def _go(page: Any, selector: str, url_glob: str, *, key: str = "Enter") -> None:
    """Tab to a link or button and follow it with ``key``; the page it opens, labelled."""
    await _tab_to(page, selector)
    async with page.expect_navigation(url=url_glob):
        await page.keyboard.press(key)
    await _labelled(page)


async def _menu(page: Any, href: str) -> None:
    await _go(page, f'header nav a[href="{href}"]', f"**{href}")


async def _type_into(page: Any, selector: str, value: str, *, back: bool = False) -> None:
    await _tab_to(page, selector, back=back)
    await page.keyboard.type(value)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
async def test_the_main_flow_by_keyboard_alone(  # type: ignore[no-untyped-def]
    app, client, admin, sessionmaker, settings, engine
) -> None:
    need_chromium()
    from playwright.async_api import async_playwright, expect

    for i in range(6):
        r = await client.put(
            f"/v1/contacts/reader{i}@example.test",
            headers=admin,
            json={"attributes": {"plan": "pro" if i % 2 == 0 else "free"}},
        )
        assert r.status_code == 201
    await make_person(sessionmaker, settings, "kim@example.test", "marketer")
    await make_person(sessionmaker, settings, "root@example.test", "admin")
    link = await invite(sessionmaker, settings, "new@example.test", "viewer")

    async with _serve(app) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            # -- sign in ----------------------------------------------------------------
            await page.goto(f"{base}/console/login")
            await _labelled(page)
            await _type_into(page, "#email", "kim@example.test")
            await _type_into(page, "#password", "not it")
            # back to the address and forward again: Shift+Tab works as well
            await _tab_to(page, "#email", back=True)
            await _tab_to(page, "#password")
            await page.keyboard.press("Control+A")
            await page.keyboard.type(PASSWORD)
            async with page.expect_navigation(url=f"{base}/console"):
                await page.keyboard.press("Enter")
            await _labelled(page)

            # -- contacts: search, open one, edit it ------------------------------------
            await _menu(page, "/console/contacts")
            await _type_into(page, "#q", "reader1")
            async with page.expect_navigation(url="**/console/contacts?q=reader1*"):
                await page.keyboard.press("Enter")
            await _go(
                page,
                'a[href="/console/contacts/reader1%40example.test"]',
                "**/console/contacts/reader1*example.test",
            )
            assert await page.inner_text("#contact-email") == "reader1@example.test"
            await _tab_to(page, "#tags")
            await page.keyboard.press("End")
            await page.keyboard.type("keyboard")
            await _go(page, "#save-contact", "**/console/contacts/reader1*example.test")
            contact = (await client.get("/v1/contacts/reader1@example.test", headers=admin)).json()
            assert contact["tags"] == ["keyboard"]

            # -- the import page ----------------------------------------------------------
            await _menu(page, "/console/contacts")
            await _go(page, "#import-link", "**/console/imports/new")

            # -- a segment, built condition by condition --------------------------------
            await _menu(page, "/console/segments")
            await _go(page, "#new-segment", "**/console/segments/new")
            await _type_into(page, "#segment-name", "pro by keyboard")
            await expect(page.locator("#matching")).to_have_text("6")
            await _tab_to(page, "button.add-cond")
            await page.keyboard.press("Space")
            await _labelled(page)  # the condition's controls, made by the script
            await _tab_to(page, ".cond select.field")
            await page.keyboard.type("attributes")
            await _type_into(page, ".cond input.key", "plan")
            await _tab_to(page, ".cond select.op")
            await page.keyboard.type("eq")
            await _type_into(page, ".cond input.value", "pro")
            await expect(page.locator("#matching")).to_have_text("3")
            await _go(page, "#save-segment", "**/console/segments")
            assert "pro by keyboard" in await page.inner_text("#segments")

            # -- a template ---------------------------------------------------------------
            await _menu(page, "/console/templates")
            await _go(page, "#new-template", "**/console/templates/new")
            await _type_into(page, "#template-name", "keyed news")
            await _type_into(page, "#subject", "News by keyboard")
            await expect(page.locator("#preview-subject")).to_have_text("News by keyboard")
            await _go(page, "#save-template", "**/console/templates/*")

            # -- a campaign through the wizard, its test send -----------------------------
            await _menu(page, "/console/campaigns")
            await _go(page, "#new-campaign", "**/console/campaigns/new")
            await _type_into(page, "#campaign-name", "Keyed")
            await _tab_to(page, "#template_id")
            await page.keyboard.type("keyed news")
            await _tab_to(page, "#segment_id")
            await page.keyboard.type("pro by keyboard")
            await expect(page.locator("#segment-eligible")).to_contain_text("3 (of")
            await _type_into(page, "#from_address", "News <news@mailer.test>")
            await _go(page, "#create-campaign", "**/console/campaigns/*")
            campaign_id = int(page.url.rsplit("/", 1)[1])
            got = (await client.get(f"/v1/campaigns/{campaign_id}", headers=admin)).json()
            assert got["name"] == "Keyed" and got["from_address"] == "News <news@mailer.test>"
            await _type_into(page, "#test-to", "success@simulator.amazonses.com")
            await _go(page, "#send-test", f"**/console/campaigns/{campaign_id}?tested=1")
            await expect(page.locator("#tested")).to_be_visible()

            # -- a suppression ------------------------------------------------------------
            await _menu(page, "/console/suppressions")
            await _type_into(page, "#add-email", "gone@example.test")
            await _tab_to(page, "#add-reason")
            await page.keyboard.press("Control+A")
            await page.keyboard.type("asked by phone")
            await _go(page, "#add-suppression", "**/console/suppressions*")
            assert "gone@example.test" in await page.inner_text("main")

            # -- the account page, and out ------------------------------------------------
            await _go(page, "#me", "**/console/account")
            await _go(page, "#logout", "**/console/login*")

            # -- the other pages: labelled, every stop of the focus visible ---------------
            invitation = link.replace("http://mailer.test", "")
            for path in ("/console/reset", invitation, "/dashboard/login"):
                await page.goto(f"{base}{path}")
                await _labelled(page)
                assert await _tab_through(page) >= 2
            await page.goto(f"{base}/console/login")
            await _type_into(page, "#email", "root@example.test")
            await _type_into(page, "#password", PASSWORD)
            async with page.expect_navigation(url=f"{base}/console"):
                await page.keyboard.press("Enter")
            for path in (
                "/console",
                "/console/people",
                "/console/audit",
                "/console/contacts/reader1@example.test/erase",
                f"/console/campaigns/{campaign_id}",
                "/console/campaigns?status=",
                "/console/contacts?q=&segment=",
                "/dashboard",
            ):
                await page.goto(f"{base}{path}")
                await _labelled(page)
                assert await _tab_through(page) >= 2, path
            assert errors == []
        finally:
            await browser.close()
    async with engine.connect() as conn:
        audit = await conn.execute(text("SELECT count(*) FROM audit_records"))
        assert audit.scalar() >= 5  # the edits were made, by the signed-in person
