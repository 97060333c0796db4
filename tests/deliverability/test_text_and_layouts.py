"""The text part (links as ``text <url>``, alt text, wrapped near 76 columns, URLs whole)
and the layouts (Outlook frame, responsive images, preheader, color-scheme, title)."""

from __future__ import annotations

import pytest
from lxml import html as lxml_html

from mailer.config import ROOT
from mailer.template.compiler import compile_template
from mailer.template.html_output import html_to_text
from mailer.template.layouts import wrap_fragment
from mailer.template.text_part import MAX_LINE, TEXT_WIDTH, wrap_text
from tests.message.test_send import INLINE, wait_final

TEMPLATES = ROOT / "templates"
CONTEXT = {
    "contact": {"email": "ada@example.test", "attributes": {}, "tags": []},
    "data": {},
    "unsubscribe_url": "https://mail.example/unsubscribe/abc",
    "postal_address": "Acme Ltd, 1 Main St",
}


def _render(html: str, subject: str = "Spring news") -> tuple[str, str]:
    rendered = compile_template(TEMPLATES, subject, html, None).render(CONTEXT)
    return rendered.html, rendered.text


def test_links_read_text_then_url_in_angle_brackets() -> None:
    text = html_to_text('<p>Read <a href="https://ex.test/a?b=1&amp;c=2">our news</a> today.</p>')
    assert text == "Read our news <https://ex.test/a?b=1&c=2> today.\n"
    assert "[" not in text and "](" not in text


def test_an_image_link_reads_as_its_alt_text() -> None:
    text = html_to_text(
        '<a href="https://shop.test/sale"><img src="https://cdn.test/b.png" alt="Spring sale"></a>'
        '<p><img src="https://cdn.test/logo.png" alt="Acme logo"></p>'
        '<p><img src="https://cdn.test/spacer.gif" alt=""></p>'
    )
    assert "Spring sale <https://shop.test/sale>" in text
    assert "Acme logo" in text
    assert "spacer" not in text and "cdn.test" not in text


def test_lines_wrap_near_76_columns() -> None:
    words = " ".join(f"word{i}" for i in range(200))
    _, text = _render(f"<p>{words}</p>")
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= TEXT_WIDTH
    assert sum(len(line) > 60 for line in lines) >= 20  # filled, not one word a line
    assert " ".join(text.split()).startswith(words)


def test_a_url_is_never_split_and_only_a_url_may_pass_998_octets() -> None:
    long_url = "https://track.example/c?" + "&".join(f"p{i}=v{i}" for i in range(200))
    assert len(long_url) > MAX_LINE
    href = long_url.replace("&", "&amp;")
    html = (
        f'<p>Before the link some words to fill the line <a href="{href}">click here</a>'
        f" and after it more words. {'x' * 1500}</p>"
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
    )
    _, text = _render(html)
    lines = text.splitlines()
    assert f"<{long_url}>" in lines  # whole, on a line of its own
    for line in lines:
        if len(line.encode()) > MAX_LINE:
            assert line == f"<{long_url}>"
    # a word over 998 octets that is no URL is cut
    assert max(len(line) for line in lines if line.startswith("x")) <= MAX_LINE
    # a short URL stays with its text
    assert "Unsubscribe <https://mail.example/unsubscribe/abc>" in lines


def test_wrapping_twice_changes_nothing() -> None:
    text = " ".join(["lorem ipsum dolor"] * 40) + " <https://x.test/" + "a" * 90 + ">"
    once = wrap_text(text)
    assert wrap_text(once) == once


def test_the_default_layout_is_framed_for_outlook_with_responsive_images() -> None:
    html, _ = _render(
        '{% extends "layouts/default.html" %}{% block content %}'
        '<img src="https://cdn.test/hero.png" alt="Hero">{% endblock %}'
    )
    tree = lxml_html.document_fromstring(html)
    frame = tree.xpath("//body/table[@role='presentation']")
    assert frame and frame[0].xpath(".//div[@class='content']")
    assert "<!--[if mso]><table" in html  # the fixed 600 px table Outlook lays out
    img = tree.xpath("//img")[0]
    assert "max-width: 100%" in img.get("style") and "height: auto" in img.get("style")


def test_the_default_layout_has_a_preheader_color_scheme_and_the_subject_as_title() -> None:
    html, text = _render(
        '{% extends "layouts/default.html" %}'
        "{% block preheader %}Two days left: 20% off{% endblock %}"
        "{% block content %}<p>Hello</p>{% endblock %}",
        subject="Hello {{ contact.email }}",
    )
    tree = lxml_html.document_fromstring(html)
    assert tree.findtext(".//title") == "Hello ada@example.test"
    preheader = tree.xpath("//div[@class='preheader']")[0]
    assert preheader.text_content() == "Two days left: 20% off"
    assert "display: none" in preheader.get("style")
    # first in the body, so inboxes show it after the subject; not in the text part
    assert tree.body[0] is preheader
    assert "Two days left" not in text
    assert tree.xpath("//meta[@name='color-scheme']")[0].get("content") == "light dark"
    assert "prefers-color-scheme: dark" in html
    # a template's own title block still wins
    html, _ = _render(
        '{% extends "layouts/default.html" %}{% block title %}Own{% endblock %}'
        "{% block content %}x{% endblock %}"
    )
    assert lxml_html.document_fromstring(html).findtext(".//title") == "Own"


def test_a_fragment_is_wrapped_in_the_plain_layout_and_a_document_is_not() -> None:
    wrapped = wrap_fragment("<p>Your code is {{ contact.email }}</p>")
    assert wrapped.startswith('{% extends "layouts/plain.html" %}')
    for whole in (
        "<!DOCTYPE html><html><body>x</body></html>",
        '{% extends "layouts/default.html" %}',
    ):
        assert wrap_fragment(whole) == whole
    html, _ = _render(wrapped, subject="Your code")
    tree = lxml_html.document_fromstring(html)
    assert html.lower().startswith("<!doctype html>")
    assert tree.findtext(".//title") == "Your code"
    assert tree.xpath("//meta[@name='viewport']")


@pytest.fixture
async def tx(make_key) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {await make_key('transactional')}"}


async def test_inline_transactional_html_goes_out_as_a_whole_document(
    client, tx, clean_standin, start_worker
):
    start_worker()
    r = await client.post("/v1/messages", headers=tx, json=INLINE)
    assert r.status_code == 202, r.text
    assert (await wait_final(client, tx, r.json()["id"], timeout=120))["status"] == "sent"
    (call,) = clean_standin.control.messages()
    html = call["Content"]["Simple"]["Body"]["Html"]["Data"]
    assert html.lower().startswith("<!doctype html>")
    tree = lxml_html.document_fromstring(html)
    assert tree.findtext(".//title") == "Your code 123"
    assert "Code 123" in tree.body.text_content()
