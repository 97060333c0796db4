"""A message's HTML with its CSS inlined, and a text part made from it (css_inline, inscriptis):
the full path, apart because the render and the shapes' fast path both take it."""

from __future__ import annotations

import re

import css_inline
import inscriptis
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_properties import Display
from inscriptis.model.config import ParserConfig
from inscriptis.model.html_element import HtmlElement
from inscriptis.model.tag import CustomHtmlTagHandlerMapping
from jinja2 import TemplateSyntaxError as TemplateSyntaxError

from mailer.template import text_part
from mailer.template.sandbox import (
    RenderError,
)

# @media rules stay in a <style> (the responsive layout needs them); the rest is inlined
_INLINER = css_inline.CSSInliner(
    keep_style_tags=False, load_remote_stylesheets=False, keep_at_rules=True
)


def inline_css(body: str) -> str:
    if "<style" not in body and "stylesheet" not in body:
        return body
    try:
        return _INLINER.inline(body)
    except ValueError as exc:  # css_inline raises on broken CSS
        raise RenderError(f"CSS could not be inlined: {exc}") from exc


# layout tables of an email read as blocks of text, not as a grid padded to its cells
_TABLE_TAGS = ("table", "tbody", "thead", "tfoot", "tr", "td", "th")
_TEXT_CONFIG = ParserConfig(
    css={
        **CSS_PROFILES["strict"],
        **{tag: HtmlElement(tag, display=Display.block) for tag in _TABLE_TAGS},
    },
    display_links=True,
    custom_html_tag_handler_mapping=CustomHtmlTagHandlerMapping(
        start_tag_mapping={**dict.fromkeys(_TABLE_TAGS), **text_part.START_HANDLERS},
        end_tag_mapping={**dict.fromkeys(_TABLE_TAGS), **text_part.END_HANDLERS},
    ),
)
_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING = re.compile(r"[ \t]+\n")


def html_to_text(body: str) -> str:
    """A plain-text part for mail that gave none (inscriptis): links as ``text <url>``
    (:mod:`mailer.template.text_part`), no markup, paragraphs split by blank lines."""
    # inscriptis unescapes text that lxml has already unescaped once: "&amp;lt;" would
    # come out as "<"; escaping every "&" once more makes the two unescapes give the text
    try:
        text = inscriptis.get_text(body.replace("&", "&amp;"), _TEXT_CONFIG)
    except Exception as exc:  # noqa: BLE001 - whatever the parser refuses fails one message
        raise RenderError(f"no text part could be made from the HTML: {exc}") from exc
    text = _TRAILING.sub("\n", text.replace("\xa0", " ") + "\n")
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip() + "\n"
