"""Rendering in the sandbox (:mod:`mailer.template.sandbox`): strict undefined, HTML
autoescaping in the HTML part, CSS inlined, a text part when none is given, no line over
998 characters.

Templates are compiled once per template version and cached; layouts and partials come
from the ``templates/`` folder (``{% extends "layouts/default.html" %}``). The subject and
the text part are not HTML: they are not escaped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple

import css_inline
import inscriptis
from inscriptis.css_profiles import CSS_PROFILES
from inscriptis.html_properties import Display
from inscriptis.model.config import ParserConfig
from inscriptis.model.html_element import HtmlElement
from inscriptis.model.tag import CustomHtmlTagHandlerMapping
from jinja2 import FileSystemLoader, Template, TemplateError, TemplateNotFound, nodes
from jinja2 import TemplateSyntaxError as TemplateSyntaxError
from markupsafe import Markup

from mailer.template.content import MAX_LINE, fold_html, fold_text, longest_line
from mailer.template.sandbox import (
    MAX_OUTPUT_CHARS,
    BoundedEnvironment,
    RenderError,
    RenderLimitError,
    budget,
)

PARTS = ("subject", "html", "text")


class Rendered(NamedTuple):
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class CompiledTemplate:
    subject: Template
    html: Template
    text: Template | None
    # per output shape: the CSS-inlined HTML and the derived text with holes for the values
    _shapes: dict[tuple[str | None, ...], _Derived | None] = field(
        default_factory=dict, compare=False, repr=False)

    def render(self, context: dict[str, Any]) -> Rendered:
        """One message; RenderError (RenderLimitError for a sandbox limit) if it fails."""
        with budget():
            try:
                # the templates' render functions, without Template.render's copy of the
                # context and its extra generator (errors are turned into RenderError here)
                subject = " ".join("".join(_run(self.subject, context)).split())
                chunks = list(_run(self.html, context))
                text = "".join(_run(self.text, context)) if self.text is not None else None
            except RenderError:
                raise
            except TemplateNotFound as exc:
                raise RenderError(f"template error: template {exc.name!r} not found") from exc
            except TemplateError as exc:
                raise RenderError(f"template error: {exc}") from exc
            except RecursionError as exc:
                raise RenderLimitError("recursion limit: the template nests too deep") from exc
            except MemoryError as exc:
                raise RenderLimitError("output limit: the render ran out of memory") from exc
            except Exception as exc:  # noqa: BLE001 - any failure of one recipient's data
                raise RenderError(f"template error: {type(exc).__name__}: {exc}") from exc
        body = "".join(chunks)
        if len(body) > MAX_OUTPUT_CHARS or (text and len(text) > MAX_OUTPUT_CHARS):
            raise RenderLimitError(
                f"output limit: the render produced more than {MAX_OUTPUT_CHARS:,} characters")
        if text is not None:
            text = fold_text(text)
        derived = self._derive(chunks, body, text is None)
        if derived is not None:
            html, derived_text = derived
            return Rendered(subject=subject, html=html, text=text or derived_text)
        inlined = _inline_css(body)
        return Rendered(subject=subject, html=fold_html(inlined),
                        text=text or fold_text(html_to_text(inlined)))

    def _derive(self, chunks: list[str], body: str, need_text: bool) -> tuple[str, str] | None:
        """CSS inlining and the text part without parsing this message's HTML.

        A campaign's messages differ only in the values put into one template. Where every
        value is plain (words, no markup characters, so escaping leaves it alone) and sits
        in text or a link, inlining and text conversion act on the template's own HTML
        alone: they are done once per output shape with placeholders for the values, and
        each message only fills them in. Anything else takes the full path; so does a shape
        whose first message came out different from the full path.
        """
        values: list[str] = [c for c in chunks if type(c) is Markup]  # escaped {{ }}
        if values and not _PLAIN_VALUES.fullmatch("\n".join(values)):
            return None
        shape = tuple([None if type(chunk) is Markup else chunk for chunk in chunks])
        try:
            derived = self._shapes[shape]
        except KeyError:
            if len(self._shapes) >= MAX_SHAPES:
                return None
            derived = _Derived.build(shape)
            if derived is not None:
                slow = _inline_css(body)
                if derived.fill(values) != (fold_html(slow), fold_text(html_to_text(slow))):
                    derived = None
            self._shapes[shape] = derived
        if derived is None:
            return None
        return derived.fill(values, need_text)


MAX_SHAPES = 16  # per template version; loops make new shapes, bounded here
# a value that escaping, inlining and text conversion leave alone: words split by spaces
_PLAIN = re.compile(r"[^\s<>&\"'\ue000-\ue002]+(?: [^\s<>&\"'\ue000-\ue002]+)*")
# all of a message's values, one a line, each plain
_PLAIN_VALUES = re.compile(f"{_PLAIN.pattern}(?:\n{_PLAIN.pattern})*")
_HOLE = re.compile("\ue000(\\d+)\ue001")
_RAW_TEXT = re.compile(r"<(style|script)\b.*?</\1\s*>|<!--.*?-->", re.I | re.S)
# inside a tag a value may only be the value of one of these quoted attributes
_TAG_PREFIX = re.compile(r"\s(href|src|alt|title)=([\"'])[^\"'<>]*\Z", re.I)
_ENTITY_OPEN = re.compile(r"&[^\t\n\f <&;]{0,32}\Z")
# a long word put in every hole: text whose layout depends on the values' lengths (table
# columns padded to their widest cell) is found out by comparing with the short holes
_PAD = "\ue002" + "w" * 40


class _Holes:
    """A derived part: its static pieces and which value goes between each two."""

    __slots__ = ("statics", "order", "size")

    def __init__(self, rendered: str) -> None:
        pieces = _HOLE.split(rendered)  # text, index, text, index, ..., text
        self.statics = pieces[0::2]
        self.order = [int(i) for i in pieces[1::2]]
        self.size = len(pieces)

    def fill(self, values: list[str]) -> str:
        buf: list[str] = [""] * self.size
        buf[0::2] = self.statics
        buf[1::2] = [values[i] for i in self.order]
        return "".join(buf)


@dataclass(frozen=True)
class _Derived:
    html: _Holes
    text: _Holes
    html_longest: int  # the longest line, values not counted
    text_longest: int

    @classmethod
    def build(cls, shape: tuple[str | None, ...]) -> _Derived | None:
        parts: list[str] = []
        holes = 0
        for chunk in shape:
            if chunk is None:
                parts.append(f"\ue000{holes}\ue001")
                holes += 1
            else:
                parts.append(chunk)
        skeleton = "".join(parts)
        # where each value sits: not in <style>/<script>/comments, not in a tag except as
        # a link's or image's attribute, not completing an entity like "&no" + "tin;"
        for raw in _RAW_TEXT.finditer(skeleton):
            if "\ue000" in raw.group(0):
                return None
        for hole in _HOLE.finditer(skeleton):
            before = skeleton[: hole.start()]
            if before.rfind("<") > before.rfind(">") and not _TAG_PREFIX.search(before):
                return None
            if _ENTITY_OPEN.search(before[-40:]):
                return None
        inlined = _inline_css(skeleton)
        text = html_to_text(inlined)
        # each value must come out exactly once in the HTML, at most once in the text
        if sorted(int(i) for i in _HOLE.findall(inlined)) != list(range(holes)):
            return None
        found = _HOLE.findall(text)
        if len(found) != len(set(found)):
            return None
        padded = html_to_text(_inline_css(_HOLE.sub(lambda m: m.group(0) + _PAD, skeleton)))
        if padded != _HOLE.sub(lambda m: m.group(0) + _PAD, text):
            return None
        return cls(_Holes(inlined), _Holes(text),
                   longest_line(_HOLE.sub("", inlined)), longest_line(_HOLE.sub("", text)))

    def fill(self, values: list[str], need_text: bool = True) -> tuple[str, str]:
        extra = 4 * sum(map(len, values))  # octets at most, in UTF-8
        html = self.html.fill(values)
        if self.html_longest + extra > MAX_LINE:
            html = fold_html(html)
        if not need_text:
            return html, ""
        text = self.text.fill(values)
        if self.text_longest + extra > MAX_LINE:
            text = fold_text(text)
        return html, text


def _run(template: Template, context: dict[str, Any]) -> Any:
    return template.root_render_func(template.new_context(context))


# @media rules stay in a <style> (the responsive layout needs them); the rest is inlined
_INLINER = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False,
                                 keep_at_rules=True)


def _inline_css(body: str) -> str:
    if "<style" not in body and "stylesheet" not in body:
        return body
    try:
        return _INLINER.inline(body)
    except ValueError as exc:  # css_inline raises on broken CSS
        raise RenderError(f"CSS could not be inlined: {exc}") from exc


# layout tables of an email read as blocks of text, not as a grid padded to its cells
_TABLE_TAGS = ("table", "tbody", "thead", "tfoot", "tr", "td", "th")
_TEXT_CONFIG = ParserConfig(
    css={**CSS_PROFILES["strict"],
         **{tag: HtmlElement(tag, display=Display.block) for tag in _TABLE_TAGS}},
    display_links=True,
    custom_html_tag_handler_mapping=CustomHtmlTagHandlerMapping(
        start_tag_mapping=dict.fromkeys(_TABLE_TAGS), end_tag_mapping=dict.fromkeys(_TABLE_TAGS)),
)
_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING = re.compile(r"[ \t]+\n")


def html_to_text(body: str) -> str:
    """A plain-text part for mail that gave none (inscriptis): links kept as
    ``[text](url)``, no markup, paragraphs split by blank lines."""
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


def _autoescape(name: str | None) -> bool:
    return name not in ("subject", "text") and not (name or "").endswith(".txt")


@lru_cache(maxsize=8)
def _files_loader(templates_dir: str) -> FileSystemLoader:
    return FileSystemLoader(templates_dir)


def _environment(templates_dir: Path) -> BoundedEnvironment:
    # only the templates folder can be extended or included: a template's own parts are
    # compiled by name, not loadable (no including itself)
    return BoundedEnvironment(_files_loader(str(templates_dir)), _autoescape)


def _compile(env: BoundedEnvironment, part: str, source: str) -> Template:
    code = env.compile(source, name=part)
    # a plain dict of globals: Jinja's default ChainMap is copied (slowly) into every
    # render's context
    return env.template_class.from_code(env, code, dict(env.globals), None)


def check_syntax(templates_dir: Path, part: str, source: str) -> None:
    """Raise TemplateSyntaxError (with ``lineno``) for a template that does not compile,
    TemplateNotFound for a layout or partial that does not exist."""
    env = _environment(templates_dir)
    tree = env.parse(source, name=part)
    env.compile(tree, name=part)
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        target = node.template  # type: ignore[attr-defined]
        if isinstance(target, nodes.Const) and isinstance(target.value, str):
            try:
                env.get_template(target.value)
            except TemplateNotFound as exc:
                if getattr(node, "ignore_missing", False):
                    continue
                raise TemplateSyntaxError(f"template {target.value!r} not found",
                                          node.lineno, part) from exc


def compile_template(
    templates_dir: Path, subject: str, html: str, text: str | None
) -> CompiledTemplate:
    env = _environment(templates_dir)
    return CompiledTemplate(
        subject=_compile(env, "subject", subject),
        html=_compile(env, "html", html),
        text=_compile(env, "text", text) if text is not None else None,
    )


@lru_cache(maxsize=256)
def compiled_version(
    templates_dir: Path, version_id: int, subject: str, html: str, text: str | None
) -> CompiledTemplate:
    """Compiled once per template version (versions are immutable)."""
    return compile_template(templates_dir, subject, html, text)


__all__ = [
    "PARTS", "CompiledTemplate", "RenderError", "RenderLimitError", "Rendered",
    "TemplateSyntaxError", "check_syntax", "compile_template", "compiled_version",
    "html_to_text",
]
