"""Line folding (RFC 5322: no line over 998 octets) and headers by mail class."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html

from mailer.template.content import (
    _fold,
    _fold_ascii,
    _html_breaks,
    _last_html_break,
    fold_html,
    fold_text,
    mail_headers,
)


def _octets(s: str) -> int:
    return max(len(line.encode()) for line in s.split("\n"))


def test_long_text_lines_break_between_words_counting_octets():
    line = " ".join(["Grüße"] * 400)  # 2,399 characters, 2,799 octets
    folded = fold_text(line)
    assert _octets(folded) <= 998
    assert folded.replace("\n", " ") == line
    word = "ü" * 1200  # no space at all: split hard, on a character boundary
    assert _octets(fold_text(word)) <= 998 and fold_text(word).replace("\n", "") == word


def test_long_html_lines_break_where_rendering_does_not_change():
    cells = "".join(
        f'<td class="c{i}" style="padding: 4px; color: #333">wörd {i}</td>' for i in range(60)
    )
    html = f"<html><body><table><tr>{cells}</tr></table><!-- {'x' * 50} --></body></html>"
    folded = fold_html(html)
    assert _octets(folded) <= 998 and "\n" in folded
    before, after = lxml_html.document_fromstring(html), lxml_html.document_fromstring(folded)
    # a newline for a space: the same text once HTML collapses whitespace
    assert [" ".join(td.text_content().split()) for td in after.xpath("//td")] == [
        td.text_content() for td in before.xpath("//td")
    ]
    assert [td.attrib for td in after.xpath("//td")] == [td.attrib for td in before.xpath("//td")]
    short = "<p>short</p>\n<p>lines</p>"
    assert fold_html(short) is short


# pieces of ASCII HTML lines, long ones included: tags (nested "<", unclosed), attributes
# with all kinds of whitespace before them, words, runs of spaces and tabs, stray ">"
_PIECES = st.sampled_from(
    [
        "<td",
        "<a",
        "<b>",
        "</i> ",
        ">",
        "</td>",
        " ",
        "  ",
        "\t",
        "\x0c",
        "\r",
        'href="',
        'class="c"',
        "'",
        '"',
        "=",
        "<",
        "word",
        "x" * 300,
        "y" * 1100,
        " z" * 200,
        ' style="padding: 4px"' * 20,
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, min_size=1, max_size=60))
def test_fast_folding_of_ascii_lines_cuts_exactly_where_the_token_walk_does(pieces):
    line = "".join(pieces)
    line *= 1 + 2000 // len(line)  # over 998 characters, ASCII, no comment
    assert _fold_ascii(line, _last_html_break(line)) == _fold(line, _html_breaks(line))


def test_marketing_mail_always_has_one_click_unsubscribe_transactional_only_when_asked():
    mailto = "mailto:unsubscribe+tok@unsub.mailer.test?subject=unsubscribe-tok"
    marketing = mail_headers("marketing", "https://m.test/unsubscribe/tok", mailto)
    assert marketing == {
        "List-Unsubscribe": f"<https://m.test/unsubscribe/tok>, <{mailto}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    assert mail_headers("transactional", "https://m.test/unsubscribe/tok", mailto) == {}
    assert (
        mail_headers(
            "transactional", "https://m.test/unsubscribe/tok", mailto, list_unsubscribe=True
        )
        == marketing
    )
