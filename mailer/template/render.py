"""Rendering in Jinja's sandbox: strict undefined, bounded loops and output, CSS inlined.

Templates are compiled once per template version and cached; layouts and partials come
from the ``templates/`` folder (``{% extends "layouts/default.html" %}``).
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    DictLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateSyntaxError,
)
from jinja2.sandbox import SandboxedEnvironment

MAX_RANGE = 10_000
MAX_OUTPUT_CHARS = 2_000_000


class RenderError(Exception):
    """A template failed for one recipient; the message fails with this reason."""


class _Dynamic(str):
    """The output of one ``{{ }}``: told apart from the template's own text in the chunks a
    render yields (Jinja calls ``str()`` on it, which returns it unchanged)."""

    __slots__ = ()

    def __str__(self) -> str:
        return self


def _finalize(value: Any) -> _Dynamic:
    return _Dynamic(value if isinstance(value, str) else str(value))


class _BoundedEnvironment(SandboxedEnvironment):
    def __init__(self, loader: BaseLoader) -> None:
        super().__init__(loader=loader, undefined=StrictUndefined, autoescape=False,
                         finalize=_finalize)
        self.globals["range"] = _bounded_range

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_"):
            return False
        return super().is_safe_attribute(obj, attr, value)


def _bounded_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise RenderError(f"range() of {len(r)} items exceeds the limit of {MAX_RANGE}")
    return r


@dataclass(frozen=True)
class Rendered:
    subject: str
    html: str
    text: str


@dataclass(frozen=True)
class CompiledTemplate:
    subject: Any
    html: Any
    text: Any | None
    # per output shape: the CSS-inlined HTML and the derived text with holes for the values
    _shapes: dict[tuple[str | None, ...], _Derived | None] = field(
        default_factory=dict, compare=False, repr=False)

    def render(self, context: dict[str, Any]) -> Rendered:
        try:
            subject = " ".join(self.subject.render(context).split())
            chunks = list(self.html.generate(context))
            text = self.text.render(context) if self.text is not None else None
        except RenderError:
            raise
        except TemplateError as exc:
            raise RenderError(f"template error: {exc}") from exc
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise RenderError(f"template error: {type(exc).__name__}: {exc}") from exc
        body = "".join(chunks)
        if len(body) > MAX_OUTPUT_CHARS or (text and len(text) > MAX_OUTPUT_CHARS):
            raise RenderError(f"rendered output exceeds {MAX_OUTPUT_CHARS} characters")
        derived = self._derive(chunks, body, text is None)
        if derived is not None:
            inlined, derived_text = derived
            return Rendered(subject=subject, html=inlined, text=text or derived_text)
        inlined = _inline_css(body)
        return Rendered(subject=subject, html=inlined, text=text or html_to_text(inlined))

    def _derive(self, chunks: list[str], body: str, need_text: bool) -> tuple[str, str] | None:
        """CSS inlining and the text part without parsing this message's HTML.

        A campaign's messages differ only in the values put into one template. Where every
        value is plain (words, no markup characters) and sits in text or a link, inlining
        and text conversion act on the template's own HTML alone: they are done once per
        output shape with placeholders for the values, and each message only fills them
        in. Anything else takes the full path; so does a shape whose first message came out
        different from the full path.
        """
        values: list[str] = []
        key: list[str | None] = []
        for chunk in chunks:
            if type(chunk) is _Dynamic:
                if not _PLAIN.fullmatch(chunk):
                    return None
                values.append(chunk)
                key.append(None)
            else:
                key.append(chunk)
        shape = tuple(key)
        try:
            derived = self._shapes[shape]
        except KeyError:
            if len(self._shapes) >= MAX_SHAPES:
                return None
            derived = _Derived.build(shape)
            if derived is not None:
                slow = _inline_css(body)
                if derived.fill(values) != (slow, html_to_text(slow)):
                    derived = None
            self._shapes[shape] = derived
        if derived is None:
            return None
        return derived.fill(values, need_text)


MAX_SHAPES = 16  # per template version; loops make new shapes, bounded here
# a value that inlining and text conversion leave alone: words split by single spaces
_PLAIN = re.compile(r"[^\s<>&\"'\ue000\ue001]+(?: [^\s<>&\"'\ue000\ue001]+)*")
_HOLE = re.compile("\ue000(\\d+)\ue001")
_RAW_TEXT = re.compile(r"<(style|script)\b.*?</\1\s*>|<!--.*?-->", re.I | re.S)
# inside a tag a value may only be the value of one of these quoted attributes
_TAG_PREFIX = re.compile(r"\s(href|src|alt|title)=([\"'])[^\"'<>]*\Z", re.I)
_ENTITY_OPEN = re.compile(r"&[^\t\n\f <&;]{0,32}\Z")


@dataclass(frozen=True)
class _Derived:
    html: list[str | int]  # static text and value indexes, in order
    text: list[str | int]

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
        return cls(_split(inlined), _split(text))

    def fill(self, values: list[str], need_text: bool = True) -> tuple[str, str]:
        return _fill(self.html, values), _fill(self.text, values) if need_text else ""


def _fill(parts: list[str | int], values: list[str]) -> str:
    return "".join([p if isinstance(p, str) else values[p] for p in parts])


def _split(rendered: str) -> list[str | int]:
    pieces = _HOLE.split(rendered)
    # re.split alternates text and captured indexes: text, index, text, ...
    return [int(p) if i % 2 else p for i, p in enumerate(pieces) if i % 2 or p]


_INLINER = css_inline.CSSInliner(keep_style_tags=False, load_remote_stylesheets=False)


def _inline_css(body: str) -> str:
    if "<style" not in body and "stylesheet" not in body:
        return body
    try:
        return _INLINER.inline(body)
    except ValueError as exc:  # css_inline raises on broken CSS
        raise RenderError(f"CSS could not be inlined: {exc}") from exc


_BLOCK_END = re.compile(r"</(p|div|h[1-6]|li|tr|table|ul|ol|blockquote)>|<br\s*/?>", re.I)
_LINK = re.compile(r"<a\s[^>]*href=[\"']([^\"']+)[\"'][^>]*>(.*?)</a>", re.I | re.S)
_DROP = re.compile(r"<(head|style|script)[^>]*>.*?</\1>", re.I | re.S)
_TAG = re.compile(r"<[^>]+>")


def html_to_text(body: str) -> str:
    """A plain-text part for mail that gave none: links kept as ``text (url)``."""
    out = _DROP.sub("", body)
    out = _LINK.sub(lambda m: f"{_TAG.sub('', m.group(2)).strip()} ({m.group(1)})", out)
    out = _BLOCK_END.sub("\n", out)
    out = html_lib.unescape(_TAG.sub("", out))
    # str.split() is much faster here than a whitespace regex
    out = "\n".join([" ".join(line.split()) for line in out.split("\n")])
    if "\n\n\n" in out:
        out = _BLANK_LINES.sub("\n\n", out)
    return out.strip() + "\n"


_BLANK_LINES = re.compile(r"\n{3,}")


@lru_cache(maxsize=8)
def _files_loader(templates_dir: str) -> FileSystemLoader:
    return FileSystemLoader(templates_dir)


def _environment(templates_dir: Path, sources: dict[str, str]) -> _BoundedEnvironment:
    loader = ChoiceLoader([DictLoader(sources), _files_loader(str(templates_dir))])
    return _BoundedEnvironment(loader)


def check_syntax(templates_dir: Path, field: str, source: str) -> None:
    """Raise TemplateSyntaxError (with ``lineno``) for a template that does not compile."""
    env = _environment(templates_dir, {field: source})
    env.get_template(field)


def compile_template(
    templates_dir: Path, subject: str, html: str, text: str | None
) -> CompiledTemplate:
    sources = {"subject": subject, "html": html}
    if text is not None:
        sources["text"] = text
    env = _environment(templates_dir, sources)
    return CompiledTemplate(
        subject=env.get_template("subject"),
        html=env.get_template("html"),
        text=env.get_template("text") if text is not None else None,
    )


@lru_cache(maxsize=256)
def compiled_version(
    templates_dir: Path, version_id: int, subject: str, html: str, text: str | None
) -> CompiledTemplate:
    """Compiled once per template version (versions are immutable)."""
    return compile_template(templates_dir, subject, html, text)


__all__ = [
    "CompiledTemplate", "RenderError", "Rendered", "TemplateSyntaxError", "check_syntax",
    "compile_template", "compiled_version", "html_to_text",
]
