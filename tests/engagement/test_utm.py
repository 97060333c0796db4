"""UTM parameters on a campaign's links where asked, never on the unsubscribe link."""

from __future__ import annotations

import re
from html import unescape

import pytest

from mailer.engagement.links import with_utm
from tests import factories

UTM = {"source": "newsletter", "medium": "email", "campaign": "spring sale"}
TAGS = "utm_source=newsletter&amp;utm_medium=email&amp;utm_campaign=spring%20sale"
HTML = (
    '{% extends "layouts/default.html" %}{% block content %}'
    '<p><a href="https://shop.example/spring">Spring</a>'
    " <a href='https://shop.example/sale?ref=news#top'>Sale</a>"
    ' <a href="https://shop.example/x?utm_source=partner">Partner</a>'
    " <a href=\"{{ data.get('url', 'https://shop.example/dyn') }}\">Built</a>"
    ' <a href="mailto:help@shop.example">Help</a>'
    ' <a href="http://mailer.test/unsubscribe/all">Leave</a>'
    ' <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    "{% endblock %}"
)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ('<a href="https://a.example/">', f'<a href="https://a.example/?{TAGS}">'),
        ('<a href="https://a.example/?q=1#f">', f'<a href="https://a.example/?q=1&amp;{TAGS}#f">'),
        ('<a HREF = "http://a.example">', f'<a HREF = "http://a.example?{TAGS}">'),
        ('<a href="{{ unsubscribe_url }}">', '<a href="{{ unsubscribe_url }}">'),
        (
            '<a href="https://x.example/unsubscribe?u=1">',
            '<a href="https://x.example/unsubscribe?u=1">',
        ),
        (
            '<a href="https://a.example/?utm_source=x">',
            '<a href="https://a.example/?utm_source=x">',
        ),
        ('<a href="mailto:a@b.example">', '<a href="mailto:a@b.example">'),
        ("<p>https://a.example/ in text</p>", "<p>https://a.example/ in text</p>"),
    ],
)
def test_with_utm(source: str, expected: str) -> None:
    assert with_utm(source, UTM) == expected
    assert with_utm(source, None) == source


async def test_a_campaign_with_utm_sends_tagged_links_and_a_bare_unsubscribe_link(
    client, admin, clean_standin, start_worker
) -> None:
    await factories.contacts(client, admin, 2)
    template = await factories.template(client, admin, html=HTML)
    tagged = await factories.campaign(client, admin, template_id=template["id"], utm=UTM)
    assert tagged["utm"] == UTM
    plain = await factories.campaign(client, admin, template_id=template["id"], name="Plain")
    assert plain["utm"] is None
    start_worker()
    for campaign in (tagged, plain):
        r = await client.post(f"/v1/campaigns/{campaign['id']}/send", headers=admin)
        assert r.status_code == 202, r.text
        await factories.wait_for_status(client, admin, campaign["id"], {"completed"}, 60)

    sent = clean_standin.control.messages()
    assert len(sent) == 4
    for message in sent:
        tags = {t["Name"]: t["Value"] for t in message["EmailTags"]}
        html = message["Content"]["Simple"]["Body"]["Html"]["Data"]
        hrefs = [unescape(h) for h in re.findall(r"""href=["']([^"']*)["']""", html)]
        unsubscribe = [h for h in hrefs if "/unsubscribe/" in h]
        assert unsubscribe and all("utm_" not in h for h in unsubscribe), hrefs
        assert "https://shop.example/x?utm_source=partner" in hrefs
        assert "https://shop.example/dyn" in hrefs  # built by the template: as it is
        if tags["campaign_id"] == str(tagged["id"]):
            assert f"https://shop.example/spring?{TAGS.replace('&amp;', '&')}" in hrefs
            assert f"https://shop.example/sale?ref=news&{TAGS.replace('&amp;', '&')}#top" in hrefs
        else:
            assert not [h for h in hrefs if "utm_" in h and "partner" not in h], hrefs
