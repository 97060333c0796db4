"""Rendering derives the inlined HTML and the text part once per output shape and fills in
each message's values: whatever the template and the values, the result must be exactly
what inlining and converting that message's own HTML gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import html as lxml_html

from mailer.template.compiler import compile_template
from mailer.template.content import fold_html, fold_text
from mailer.template.html_output import html_to_text, inline_css

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

PIECES = [
    "<p class='lead'>Hello {{ v[0] }}, welcome.</p>",
    "<a href='{{ v[1] }}'>{{ v[2] }}</a>",
    "<a href=\"https://x.test/{{ v[3] }}\" class='btn'>Go  {{ v[4] }} now</a>",
    "&amp; &copy; &no{{ v[5] }}",
    "<div {{ v[6] }}>block</div>",
    "<div class='{{ v[7] }}'>classy</div>",
    "{% if flag %}<b>yes {{ v[8] }}</b>{% else %}<i>no</i>{% endif %}",
    "<style>p { color: {{ v[9] }}; }</style>",
    "<!-- note {{ v[10] }} -->",
    "<img alt='{{ v[11] }}' src='https://x.test/i.png'>",
    "   \n\n\n  <br>  ",
    "<ul>{% for i in items %}<li>{{ i }} {{ v[12] }}</li>{% endfor %}</ul>",
    "<td style='padding:4px'>{{ v[13] }}</td>",
    "{{ v[14] | default('Reader') }} and {{ contact.attributes.first_name | default('there') }}",
    "<span>{{ v[15] }}</span>{{ v[16] }}<span>{{ v[17] }}</span>",
    "<title>{{ v[18] }}</title>",
]
STYLE = (
    "<style>p { margin: 0 } .lead { font-weight: bold } a[href^='https'] { color: red }"
    " div.classy { color: blue } td { color: #333 }</style>"
)

values = st.lists(
    st.sampled_from(list("ab Zé1;#&<>\"'=/\n\t-") + ["nbsp", "amp", "tin;", "Ann"]),
    max_size=8,
).map("".join)


def _check(template_html: str, contexts: list[dict]) -> None:
    compiled = compile_template(TEMPLATES, "Hi", template_html, None)
    for context in contexts:
        rendered = compiled.render(context)
        body = compiled.html.render({"subject": rendered.subject, **context})
        slow = inline_css(body)
        assert rendered.html == fold_html(slow)
        assert rendered.text == fold_text(html_to_text(slow))


@settings(max_examples=150, deadline=None)
@given(
    pieces=st.lists(st.sampled_from(PIECES), min_size=1, max_size=8),
    layout=st.booleans(),
    contexts=st.lists(
        st.fixed_dictionaries(
            {
                "v": st.lists(values, min_size=19, max_size=19),
                "flag": st.booleans(),
                "items": st.lists(values, max_size=3),
            }
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_shapes_give_exactly_what_the_full_path_gives(pieces, layout, contexts):
    body = "".join(pieces)
    if layout:
        html = '{% extends "layouts/default.html" %}{% block content %}' + body + "{% endblock %}"
    else:
        html = f"<html><head>{STYLE}</head><body>{body}</body></html>"
    for context in contexts:
        context["contact"] = {"attributes": {"first_name": context["v"][0]}}
        context["unsubscribe_url"] = "https://x.test/u/" + context["v"][1]
    _check(html, contexts)


def test_plain_values_reuse_the_shape():
    html = (
        '{% extends "layouts/default.html" %}{% block content %}'
        "<p>Hello {{ name }}</p><a href='{{ link }}'>Read {{ title }}</a>{% endblock %}"
    )
    compiled = compile_template(TEMPLATES, "s", html, None)
    names = ["Ann", "Bo Li", "Zoë", "x" * 50]
    for i, name in enumerate(names):
        context = {
            "name": name,
            "link": f"https://x.test/{i}",
            "title": f"issue {i}",
            "unsubscribe_url": f"https://x.test/u/{i}",
        }
        rendered = compiled.render(context)
        assert f"Hello {name}" in rendered.text
        assert f"Read issue {i} <https://x.test/{i}>" in rendered.text
        assert 'style="' in rendered.html  # the layout's CSS was inlined
    # one shape served every message: the values all took the placeholder path
    assert len([d for d in compiled._shapes.values() if d is not None]) == 1


CSS = "<style>.lead { font-weight: bold } p { color: red }</style>"


@pytest.mark.parametrize(
    ("body", "first", "then"),
    [
        ("<div class='{{ v }}'>x</div>", "plain", "lead"),  # a class the CSS selects
        ("<p>&no{{ v }}</p>", "a", "tin;"),  # "&no" + "tin;" is the entity &notin;
        ("<style>p { color: {{ v }} }</style><p>x</p>", "red", "blue"),  # CSS itself
        ("<p>Hello {{ v }} there</p>", "Ann", ""),  # an empty value: the spaces collapse
        ("<p>A {{ v }} B</p>", "x", "x   y\n\nz"),  # whitespace of its own
        ("<p>in {{ v }} today.</p>", "Paris", "New\nYork"),  # a line break: not one plain value
        ("<p>{{ v }}</p>", "Ann", "<b>Ann</b> &amp; co"),  # markup in a value
        ("<a href='{{ v }}'>link</a>", "https://x.test/1", "https://x.test/?a=1&b=2"),
        ('<p title="{{ v }}">t</p>', "plain", 'say "hi"'),
    ],
)
def test_values_that_would_change_the_result_give_the_full_paths_result(body, first, then):
    html = f"<html><head>{CSS}</head><body>{body}</body></html>"
    _check(html, [{"v": first}, {"v": then}, {"v": first}])


markup = st.lists(
    st.sampled_from(
        [
            "<b>",
            "</b>",
            "<script>alert(1)</script>",
            "&amp;",
            "&",
            '"',
            "'",
            "<",
            ">",
            "Ann",
            " ",
            "é",
            "{{ 7*7 }}",
            "<a href='https://evil.test'>x</a>",
        ]
    ),
    max_size=6,
).map("".join)


@settings(max_examples=100, deadline=None)
@given(
    contexts=st.lists(
        st.fixed_dictionaries({"a": markup, "b": markup, "c": markup}), min_size=1, max_size=4
    ),
    layout=st.booleans(),
)
def test_values_are_escaped_on_every_path(contexts, layout):
    """Escaping on: whatever a value holds, it is text in the HTML (never markup), on the
    per-shape path and the full path alike, and the same text in the text part."""
    body = "<p class='lead'>{{ a }}</p><p><a href='https://x.test/?q={{ b }}'>{{ c }}</a></p>"
    if layout:
        html = '{% extends "layouts/default.html" %}{% block content %}' + body + "{% endblock %}"
    else:
        html = f"<html><head>{STYLE}</head><body>{body}</body></html>"
    compiled = compile_template(TEMPLATES, "{{ a }}", html, None)
    for context in contexts:
        rendered = compiled.render(context)
        assert rendered.subject == " ".join(context["a"].split())  # the subject is not HTML
        tree = lxml_html.document_fromstring(rendered.html)
        paragraphs = tree.xpath("//div[@class='content']/p" if layout else "//body/p")
        assert paragraphs[0].text_content() == context["a"]
        link = paragraphs[1].xpath("a")[0]
        assert link.get("href") == "https://x.test/?q=" + context["b"]
        assert link.text_content() == context["c"]
        assert not tree.xpath("//script") and not tree.xpath("//b")
        if context["a"].strip():
            # the text part is wrapped: compared word by word
            assert " ".join(context["a"].split()) in " ".join(rendered.text.split())


def test_safe_only_where_the_template_says_so():
    html = "<html><body><p>{{ v }}</p><div>{{ v | safe }}</div></body></html>"
    rendered = compile_template(TEMPLATES, "{{ v }}", html, "{{ v }}").render({"v": "<b>x</b>"})
    assert "<p>&lt;b&gt;x&lt;/b&gt;</p><div><b>x</b></div>" in rendered.html
    assert rendered.subject == "<b>x</b>" and rendered.text == "<b>x</b>"  # not HTML
