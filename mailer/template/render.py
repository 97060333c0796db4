"""Rendering in Jinja's sandbox: strict undefined, bounded loops and output, CSS inlined.

Templates are compiled once per template version and cached; layouts and partials come
from the ``templates/`` folder (``{% extends "layouts/default.html" %}``).
"""

from __future__ import annotations

import html as html_lib
import re
from dataclasses import dataclass
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


class _BoundedEnvironment(SandboxedEnvironment):
    def __init__(self, loader: BaseLoader) -> None:
        super().__init__(loader=loader, undefined=StrictUndefined, autoescape=False)
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

    def render(self, context: dict[str, Any]) -> Rendered:
        try:
            subject = " ".join(self.subject.render(context).split())
            body = self.html.render(context)
            text = self.text.render(context) if self.text is not None else None
        except RenderError:
            raise
        except TemplateError as exc:
            raise RenderError(f"template error: {exc}") from exc
        except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
            raise RenderError(f"template error: {type(exc).__name__}: {exc}") from exc
        if len(body) > MAX_OUTPUT_CHARS or (text and len(text) > MAX_OUTPUT_CHARS):
            raise RenderError(f"rendered output exceeds {MAX_OUTPUT_CHARS} characters")
        inlined = _inline_css(body)
        return Rendered(subject=subject, html=inlined, text=text or html_to_text(inlined))


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
