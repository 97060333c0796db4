"""The whole console flow in headless Chromium (Debian's), with a worker and the SES
stand-in: an invited marketer sets a password and signs in, imports a CSV file and reads
its report, builds a segment and sees its count change, writes a template and sees the
preview, creates a campaign, test-sends it, launches it, watches it complete and reads its
numbers; a viewer sees the same pages without a button that changes anything, and its
POSTs are refused; an operator pauses and resumes. Each page is photographed into
docs/console/ (linked from the README)."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests import factories
from tests.console.helpers import PASSWORD, invite, make_person
from tests.fixtures.browser import screenshot_path
from tests.ops.test_dashboard import CHROMIUM, CHROMIUM_ARGS, _serve

GOOD_ROWS = 24
CSV = (
    "email,first_name,plan\n"
    + "".join(
        f"reader{i}@example.test,Reader{i},{'pro' if i % 2 == 0 else 'free'}\n"
        for i in range(GOOD_ROWS)
    )
    + "not-an-address,Bad,pro\n,Empty,free\n"
)


async def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    await page.screenshot(path=str(screenshot_path(f"console/{name}.png")), full_page=True)


async def _sign_in(page, base: str, email: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(f"{base}/console/login")
    await page.fill("#email", email)
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await page.wait_for_url(f"{base}/console")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
async def test_the_whole_flow_in_chromium(  # type: ignore[no-untyped-def]
    app, client, admin, sessionmaker, settings, engine, start_worker, tmp_path
) -> None:
    from playwright.async_api import async_playwright, expect

    start_worker(MAILER_REGIONS="us-east-1=100")
    link = await invite(sessionmaker, settings, "mia@example.test", "marketer")
    await make_person(sessionmaker, settings, "val@example.test", "viewer")
    await make_person(sessionmaker, settings, "otto@example.test", "operator")
    await make_person(sessionmaker, settings, "root@example.test", "admin")
    csv_file = tmp_path / "readers.csv"
    csv_file.write_text(CSV)

    async with _serve(app) as base, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))

            # -- the invitation: set a password, signed in ------------------------------
            await page.goto(link.replace("http://mailer.test", base))
            assert await page.inner_text("#for") == "mia@example.test"
            await _shot(page, "invitation")
            await page.fill("#password", PASSWORD)
            await page.fill("#again", PASSWORD)
            await page.click("#set-password")
            await page.wait_for_url(f"{base}/console")
            assert "mia@example.test (marketer)" in await page.inner_text("#me")

            # -- import a CSV file, read its report -------------------------------------
            await page.goto(f"{base}/console/imports/new")
            await page.set_input_files("#file", str(csv_file))
            await page.click("#upload")
            await page.wait_for_url(f"{base}/console/imports/*")
            await expect(page.locator("#import-status")).to_have_text("completed", timeout=60_000)
            assert await page.inner_text("#created") == str(GOOD_ROWS)
            assert await page.inner_text("#rejected") == "2"
            assert await page.locator("#rejected-rows tbody tr").count() == 2
            async with page.expect_download() as download:
                await page.click("#rejected-csv")
            rejected = (await (await download.value).path()).read_text()  # type: ignore[union-attr]
            assert rejected.startswith("row,email,reason") and "not-an-address" in rejected
            await _shot(page, "import-report")

            await page.goto(f"{base}/console/contacts?q=reader1")
            assert await page.locator("#contacts tbody tr").count() >= 1
            await _shot(page, "contacts")
            await page.click("text=reader1@example.test")
            assert await page.inner_text("#contact-email") == "reader1@example.test"
            await _shot(page, "contact")

            # -- a segment whose count changes as the rules do --------------------------
            await page.goto(f"{base}/console/segments/new")
            await page.fill("#segment-name", "pro readers")
            await expect(page.locator("#matching")).not_to_have_text("–")
            everyone = await page.inner_text("#matching")
            assert everyone == str(GOOD_ROWS)
            await page.click("button.add-cond")
            row = page.locator(".cond").last
            await row.locator("select.field").select_option("attributes")
            await row.locator("input.key").fill("plan")
            await row.locator("select.op").select_option("eq")
            await row.locator("input.value").fill("pro")
            await expect(page.locator("#matching")).to_have_text(str(GOOD_ROWS // 2))
            assert await page.inner_text("#eligible") == str(GOOD_ROWS // 2)
            assert "@example.test" in await page.inner_text("#sample")
            await _shot(page, "segment-builder")
            await page.click("#save-segment")
            await page.wait_for_url(f"{base}/console/segments")
            assert "pro readers" in await page.inner_text("#segments")
            await expect(page.locator("#segments td.matching")).to_have_text(str(GOOD_ROWS // 2))
            await _shot(page, "segments")

            # -- a template with its live preview ---------------------------------------
            await page.goto(f"{base}/console/templates/new")
            await page.fill("#template-name", "spring news")
            await page.fill(
                "#subject", "Spring news for {{ contact.attributes.first_name | default('you') }}"
            )
            await page.fill("#preview-email", "reader2@example.test")
            await expect(page.locator("#preview-subject")).to_have_text("Spring news for Reader2")
            frame = page.frame_locator("#preview-desktop")
            assert "Hello Reader2" in await frame.locator("h1").inner_text()
            assert "Hello Reader2" in await page.inner_text("#preview-text")
            # a syntax error is shown, with its line
            await page.fill("#html", "<p>\n{{ contact.email </p>")
            await expect(page.locator("#template-error")).to_contain_text("line")
            await page.fill("#html", STARTER_WITH_LINK)
            await expect(page.locator("#template-error")).to_have_text("")
            await _shot(page, "template-editor")
            await page.click("#save-template")
            await page.wait_for_url(f"{base}/console/templates/*")

            # -- the campaign: wizard, review, test send, launch, completion -----------
            await page.goto(f"{base}/console/campaigns/new")
            await page.fill("#campaign-name", "Spring")
            await page.select_option("#template_id", label="spring news (version 1)")
            await page.select_option("#segment_id", label="pro readers")
            await expect(page.locator("#segment-eligible")).to_contain_text(f"{GOOD_ROWS // 2} (of")
            await page.fill("#from_address", "Spring News <news@mailer.test>")
            await _shot(page, "campaign-wizard")
            await page.click("#create-campaign")
            await page.wait_for_url(f"{base}/console/campaigns/*")
            campaign_id = int(page.url.rsplit("/", 1)[1])
            await expect(page.locator("#review-eligible")).to_have_text(str(GOOD_ROWS // 2))
            assert "Spring news for" in await page.inner_text("#review-subject")
            assert "in the body" in await page.inner_text("#review-unsubscribe")
            await page.fill("#test-to", "success@simulator.amazonses.com")
            await page.click("#send-test")
            await page.wait_for_selector("#tested")
            await _shot(page, "campaign-review")
            await page.click("#launch")
            await expect(page.locator("#campaign-status")).to_have_text("completed", timeout=90_000)
            assert await page.inner_text("#stat-recipients") == str(GOOD_ROWS // 2)
            assert await page.inner_text("#stat-sent") == str(GOOD_ROWS // 2)
            assert await page.inner_text("#progress-text") == "100.0"
            assert "campaign.launched" in await page.inner_text("table.history")
            assert "mia@example.test" in await page.inner_text("table.history")
            await _shot(page, "campaign")
            async with engine.connect() as conn:
                tests = await conn.execute(
                    text("SELECT count(*) FROM messages WHERE test_campaign_id = :c"),
                    {"c": campaign_id},
                )
                assert tests.scalar() == 1
            await page.goto(f"{base}/console/campaigns")
            await _shot(page, "campaigns")
            await page.goto(f"{base}/console/suppressions")
            await _shot(page, "suppressions")
            await page.goto(f"{base}/console/account")
            await _shot(page, "account")
            assert errors == []

            # -- a viewer: the same pages, no buttons, POSTs refused --------------------
            viewer = await browser.new_page(viewport={"width": 1280, "height": 900})
            await _sign_in(viewer, base, "val@example.test")
            await viewer.goto(f"{base}/console/campaigns/{campaign_id}")
            assert await viewer.inner_text("#campaign-status") == "completed"
            for button in ("#launch", "#pause", "#resume", "#cancel", "#send-test"):
                assert await viewer.locator(button).count() == 0
            await viewer.goto(f"{base}/console/contacts/reader1@example.test")
            assert await viewer.locator("#save-contact, #unsubscribe, #erase").count() == 0
            await viewer.goto(f"{base}/console/segments")
            assert await viewer.locator("#new-segment").count() == 0
            await viewer.goto(f"{base}/console/templates")
            assert await viewer.locator("#new-template").count() == 0
            csrf = await viewer.get_attribute("main", "data-csrf")
            for path in (
                f"/console/campaigns/{campaign_id}/cancel",
                "/console/contacts/reader1@example.test/unsubscribe",
                "/console/suppressions",
            ):
                r = await viewer.request.post(
                    f"{base}{path}", form={"csrf": csrf or "", "email": "x@example.test"}
                )
                assert r.status == 403, path
            await _shot(viewer, "viewer-campaign")

            # -- an operator pauses and resumes -----------------------------------------
            later = await factories.campaign(client, admin, send_at="2099-01-01T00:00:00Z")
            r = await client.post(f"/v1/campaigns/{later['id']}/send", headers=admin)
            assert r.json()["status"] == "scheduled"
            operator = await browser.new_page(viewport={"width": 375, "height": 800})
            await _sign_in(operator, base, "otto@example.test")
            await operator.goto(f"{base}/console/campaigns/{later['id']}")
            assert await operator.locator("#launch, #cancel").count() == 0
            await operator.click("#pause")
            await operator.wait_for_selector("#resume")
            assert await operator.inner_text("#campaign-status") == "paused"
            assert "paused by otto@example.test" in await operator.inner_text("#paused-reason")
            await _shot(operator, "campaign-phone")
            await operator.click("#resume")
            await operator.wait_for_selector("#pause")
            assert await operator.inner_text("#campaign-status") == "scheduled"
            history = await operator.inner_text("table.history")
            assert "campaign.paused" in history and "campaign.resumed" in history
            # the dashboard under the same sign-in, at phone width
            await operator.goto(f"{base}/dashboard")
            assert operator.url == f"{base}/dashboard"
            assert "otto@example.test (operator)" in await operator.inner_text("header")
            width = await operator.evaluate("document.documentElement.scrollWidth")
            assert width <= 375, width
            await _shot(operator, "dashboard-phone")

            # -- people (an admin) ------------------------------------------------------
            root = await browser.new_page(viewport={"width": 1280, "height": 900})
            await _sign_in(root, base, "root@example.test")
            await root.goto(f"{base}/console/people")
            await root.fill("#invite-email", "new@example.test")
            await root.click("#invite")
            assert "/console/invitation/" in await root.inner_text("#invitation-link")
            await _shot(root, "people")
            await root.goto(f"{base}/console/audit")
            await _shot(root, "audit")
            login = await browser.new_page(viewport={"width": 1280, "height": 700})
            await login.goto(f"{base}/console/login")
            await _shot(login, "login")
        finally:
            await browser.close()


STARTER_WITH_LINK = (
    '{% extends "layouts/default.html" %}{% block content %}\n'
    "<h1>Hello {{ contact.attributes.first_name | default('there') }}</h1>\n"
    "<p>Spring is here.</p>\n{% endblock %}\n"
)
