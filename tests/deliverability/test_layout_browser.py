"""The default layout in headless Chromium at 600 px and 375 px: nothing scrolls sideways,
a wide image shrinks to the column; the screenshots go to docs/."""

from __future__ import annotations

import base64

import pytest

from tests import factories
from tests.fixtures.browser import screenshot_path
from tests.ops.test_dashboard import CHROMIUM, CHROMIUM_ARGS

# a 1200 px wide image, inline (nothing is loaded from outside)
_WIDE_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="1200" height="400">'
    '<rect width="1200" height="400" fill="#2563eb"/>'
    '<text x="600" y="220" font-size="64" text-anchor="middle" fill="#fff"'
    ' font-family="Helvetica, Arial">Autumn sale: 20% off</text></svg>'
)
HERO = "data:image/svg+xml;base64," + base64.b64encode(_WIDE_SVG.encode()).decode()
CAMPAIGN_HTML = (
    '{% extends "layouts/default.html" %}'
    "{% block preheader %}Two days left: 20% off everything in the shop{% endblock %}"
    "{% block content %}"
    "<h1>Hello {{ contact.attributes.first_name | default('there') }}!</h1>"
    f'<p><a href="https://shop.example/sale"><img src="{HERO}" width="1200" alt="Autumn sale:'
    ' 20% off"></a></p>'
    "<p>Our autumn sale starts today. Everything in the shop is 20% off until Sunday"
    " night, and delivery is free on orders over 30 euros.</p>"
    '<p><a href="https://shop.example/sale">Shop the sale</a></p>'
    "{% endblock %}"
)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
async def test_default_layout_at_600_and_375_px(client, admin) -> None:
    from playwright.async_api import async_playwright

    template = await factories.template(
        client, admin, subject="Autumn sale: 20% off", html=CAMPAIGN_HTML
    )
    r = await client.post(
        f"/v1/templates/{template['id']}/render", headers=admin, json={"mail_class": "marketing"}
    )
    assert r.status_code == 200, r.text
    html = r.json()["html"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for width in (600, 375):
                page = await browser.new_page(viewport={"width": width, "height": 800})
                await page.set_content(html, wait_until="load")
                assert await page.title() == "Autumn sale: 20% off"
                scroll = await page.evaluate("document.documentElement.scrollWidth")
                assert scroll <= width, (width, scroll)  # nothing scrolls sideways
                image = await page.evaluate(
                    "document.querySelector('img').getBoundingClientRect().width"
                )
                assert image <= width - 2 * 16, (width, image)
                # the preheader is in the document, not on the page
                assert not await page.locator(".preheader").is_visible()
                footer = await page.locator(".footer").inner_text()
                assert "Unsubscribe" in footer and "Example Street" in footer
                await page.screenshot(
                    path=str(screenshot_path(f"layout-default-{width}.png")), full_page=True
                )
                await page.close()
        finally:
            await browser.close()
