"""Rendering in the sandbox (:mod:`mailer.template.sandbox`): strict undefined, HTML
autoescaping in the HTML part, CSS inlined, a text part when none is given, no line over
998 characters.

Templates are compiled once per template version and cached; layouts and partials come
from the ``templates/`` folder (``{% extends "layouts/default.html" %}``). The subject and
the text part are not HTML: they are not escaped.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from operator import itemgetter
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
from jinja2.runtime import Context, EvalContext, Undefined
from markupsafe import Markup

from mailer.template import text_part
from mailer.template.content import MAX_LINE, fold_html, fold_text
from mailer.template.sandbox import (
    MAX_OUTPUT_CHARS,
    MAX_RENDER_SECONDS,
    BoundedEnvironment,
    RenderError,
    RenderLimitError,
    SliceOver,
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
    # no loop, macro, call or costly filter in it or what it extends or includes: a render
    # costs about its output, and a worker runs it on its event loop (render_off_loop)
    straight: bool = False
    # per output shape: the CSS-inlined HTML and the derived text with holes for the values
    _shapes: dict[tuple[str | None, ...], _Derived | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def render(self, context: dict[str, Any]) -> Rendered:
        """One message; RenderError (RenderLimitError for a sandbox limit) if it fails."""
        done = self.finish(self.fill(context, MAX_RENDER_SECONDS), slow=True)
        assert done is not None  # noqa: S101 - slow=True always finishes
        return done

    def fill(self, context: dict[str, Any], seconds: float) -> _Filled:
        """The Jinja part, under one budget of ``seconds`` (SliceOver: a short one ran out)."""
        with budget(seconds):
            try:
                # the templates' render functions, without Template.render's copy of the
                # context and its extra generator (errors are turned into RenderError here)
                subject = " ".join("".join(_run(self.subject, context)).split())
                # the layouts' <title> defaults to the subject
                chunks = list(_run(self.html, {"subject": subject, **context}))
                text = "".join(_run(self.text, context)) if self.text is not None else None
            except (RenderError, SliceOver):
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
                f"output limit: the render produced more than {MAX_OUTPUT_CHARS:,} characters"
            )
        return _Filled(subject, chunks, body, text)

    def finish(self, filled: _Filled, slow: bool) -> Rendered | None:
        """CSS inlined, text part, lines folded. ``slow=False``: only what costs no more
        than filling in a known shape's holes, else None (the rest is work for a thread:
        inscriptis takes ~1 s for 300 KB of HTML)."""
        subject, chunks, body, text = filled
        if not slow and len(body) + len(text or "") > INLINE_CHARS:
            return None
        derived = self._derive(chunks, body, text is None, slow)
        if derived is _SLOW or (derived is None and not slow):
            return None
        if text is not None:
            text = fold_text(text)
        if derived is not None:
            html, derived_text = derived
            return Rendered(subject, html, text or derived_text)
        inlined = _inline_css(body)
        return Rendered(
            subject=subject, html=fold_html(inlined), text=text or fold_text(html_to_text(inlined))
        )

    def _derive(self, chunks: list[str], body: str, need_text: bool, slow: bool = True) -> Any:
        """CSS inlining and the text part without parsing this message's HTML.

        A campaign's messages differ only in the values put into one template. Where every
        value is plain (words, no markup characters, so escaping leaves it alone) and sits
        in text or a link, inlining and text conversion act on the template's own HTML
        alone: they are done once per output shape with placeholders for the values, and
        each message only fills them in. Anything else takes the full path; so does a shape
        whose first message came out different from the full path. ``slow=False``: a
        shape not derived yet is not derived now (``_SLOW``).
        """
        values: list[str] = [c for c in chunks if type(c) is Markup]  # escaped {{ }}
        if values and not _PLAIN_VALUES.fullmatch("\ue000".join(values)):
            return None
        shape = tuple([None if type(chunk) is Markup else chunk for chunk in chunks])
        try:
            derived = self._shapes[shape]
        except KeyError:
            if len(self._shapes) >= MAX_SHAPES:
                return None
            if not slow:
                return _SLOW  # a new shape is derived once, by the full path: in a thread
            derived = _Derived.build(shape)
            if derived is not None:
                full = _inline_css(body)
                if derived.fill(values) != (fold_html(full), fold_text(html_to_text(full))):
                    derived = None
            self._shapes[shape] = derived
        if derived is None:
            return None
        return derived.fill(values, need_text)


class _Filled(NamedTuple):
    subject: str
    chunks: list[str]
    body: str
    text: str | None


_SLOW = object()  # a result that needs the slow path

MAX_SHAPES = 16  # per template version; loops make new shapes, bounded here
# a value that escaping, inlining and text conversion leave alone: words split by spaces
# (a word: no whitespace, what \s matches spelt out, which the regex engine tests faster)
_WORD = (
    "[^\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
    "<>&\"'\ue000-\ue002]++"
)
_PLAIN = re.compile(f"{_WORD}(?: {_WORD})*+")
# all of a message's values, joined by "\ue000" (which no plain value holds: "\n" could be
# in one, and text conversion makes a space of it), each plain
_PLAIN_VALUES = re.compile(f"{_PLAIN.pattern}(?:\ue000{_PLAIN.pattern})*+")
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

    __slots__ = ("statics", "order", "size", "pick", "lines", "static_longest", "value_longest")

    def __init__(
        self, rendered: str, holes: int, fold: Callable[[str], str], limit: int = MAX_LINE
    ) -> None:
        # a line without values comes out of ``fold`` the same for every message (folding
        # works line by line): fold it once here, so messages only look at lines with values
        # (``limit``: the longest line ``fold`` leaves alone, 76 columns for the text part)
        rendered = "\n".join(
            line if "\ue000" in line or len(line.encode()) <= limit else fold(line)
            for line in rendered.split("\n")
        )
        pieces = _HOLE.split(rendered)  # text, index, text, index, ..., text
        self.statics = pieces[0::2]
        self.order = [int(i) for i in pieces[1::2]]
        self.size = len(pieces)
        # the values in the order they go in: as they are when that is all of the shape's
        # values in their own order, else picked in C
        order = self.order
        self.pick: Callable[[list[str]], Any] | None
        if order == list(range(holes)):
            self.pick = None
        elif len(order) > 1:
            self.pick = itemgetter(*order)
        else:  # itemgetter of one index gives the item, not a tuple
            self.pick = lambda values: [values[i] for i in order]
        # for the 998-octet line rule: each line that holds values, with its own octets and
        # the values it holds (a plain value has no line break), and the longest other line
        self.lines: list[tuple[int, list[int]]] = []
        self.static_longest = 0
        for line in rendered.split("\n"):
            own = len(_HOLE.sub("", line).encode())
            held = [int(i) for i in _HOLE.findall(line)]
            if held:
                self.lines.append((own, held))
            elif own <= limit or fold(line) != line:  # not one a fold leaves as it is
                self.static_longest = max(self.static_longest, own)
        self.value_longest = max([own for own, _ in self.lines], default=0)

    def may_exceed(self, values: list[str], size: int, limit: int, weight: int = 4) -> bool:
        """Whether a line of the filled part could be over ``limit`` octets (a value's
        characters counted as ``weight`` octets each, 4: any UTF-8; 1 for the text part's
        wrapping, which counts characters; ``size``: all of them): only then is folding
        worth a look."""
        if self.static_longest > limit:
            return True
        if self.value_longest + weight * size <= limit:
            return False  # the common case, in one cheap bound over all values
        return any(
            own + weight * sum([len(values[i]) for i in held]) > limit for own, held in self.lines
        )

    def fill(self, values: list[str]) -> str:
        buf: list[str] = [""] * self.size
        buf[0::2] = self.statics
        buf[1::2] = values if self.pick is None else self.pick(values)
        return "".join(buf)


@dataclass(frozen=True)
class _Derived:
    html: _Holes
    text: _Holes

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
        return cls(
            _Holes(inlined, holes, fold_html),
            _Holes(text, holes, fold_text, text_part.TEXT_WIDTH),
        )

    def fill(self, values: list[str], need_text: bool = True) -> tuple[str, str]:
        size = sum(map(len, values))
        html = self.html.fill(values)
        if self.html.may_exceed(values, size, MAX_LINE):
            html = fold_html(html)
        if not need_text:
            return html, ""
        text = self.text.fill(values)
        if self.text.may_exceed(values, size, text_part.TEXT_WIDTH, 1):
            text = fold_text(text)
        return html, text


def _run(template: Template, context: dict[str, Any]) -> Any:
    return template.root_render_func(_new_context(template, context))


def _new_context(template: Template, context: dict[str, Any]) -> Context:
    """What ``template.new_context(context)`` gives, without its calls per render: the
    parts that are the same for every render of a template (its autoescaping, its globals'
    names) are worked out once; each render still gets fresh, unshared state."""
    fixed = template.__dict__.get("_mailer_fixed")
    if fixed is None:
        if template.environment.context_class is not Context or type(template.globals) is not dict:
            return template.new_context(context)
        probe = template.new_context({})
        if sorted(vars(probe)) != _CONTEXT_ATTRS or sorted(vars(probe.eval_ctx)) != _EVAL_ATTRS:
            return template.new_context(context)  # a Jinja whose contexts hold other state
        fixed = template.__dict__["_mailer_fixed"] = (
            template.environment,
            template.name,
            template.globals,
            # only read (Jinja takes set differences of it): one set for every render
            frozenset(template.globals),
            template.blocks,
            probe.eval_ctx.autoescape,
        )
    env, name, globals_, globals_keys, blocks, autoescape = fixed
    eval_ctx = _new_object(EvalContext)
    eval_ctx.__dict__ = {"environment": env, "autoescape": autoescape, "volatile": False}
    ctx = _new_object(Context)
    ctx.__dict__ = {
        "parent": {**globals_, **context},
        "vars": {},
        "environment": env,
        "eval_ctx": eval_ctx,
        "exported_vars": set(),
        "name": name,
        "globals_keys": globals_keys,
        "blocks": {k: [v] for k, v in blocks.items()},
    }
    return ctx


_new_object = object.__new__
_CONTEXT_ATTRS = sorted(
    ["parent", "vars", "environment", "eval_ctx", "exported_vars", "name", "globals_keys", "blocks"]
)
_EVAL_ATTRS = ["autoescape", "environment", "volatile"]


# @media rules stay in a <style> (the responsive layout needs them); the rest is inlined
_INLINER = css_inline.CSSInliner(
    keep_style_tags=False, load_remote_stylesheets=False, keep_at_rules=True
)


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


def _no_function_values(env: BoundedEnvironment, tree: nodes.Template, part: str) -> None:
    """A method of a constant or a global function used as a value, not called
    (``{{ 'abc'.split }}``, ``[''.split]|join``, ``{{ range }}``): known when the template
    is saved, so refused then (the render refuses it too, and what depends on data)."""
    # what is called, or whose attribute or item is taken, is not used as a value
    used = {
        id(getattr(node, "node", None))
        for node in tree.find_all((nodes.Call, nodes.Getattr, nodes.Getitem))
    }
    eval_ctx = EvalContext(env, part)
    for node in tree.find_all((nodes.Getattr, nodes.Name)):
        if id(node) in used or getattr(node, "ctx", "load") != "load":
            continue
        if isinstance(node, nodes.Name):
            value = env.globals.get(node.name)
        else:
            try:
                value = node.as_const(eval_ctx)
            except Exception:  # noqa: BLE001, S112 - not a constant: left to the render
                continue
        if callable(value) and not isinstance(value, Undefined):  # unsafe: an Undefined
            name = node.name if isinstance(node, nodes.Name) else f"….{getattr(node, 'attr', '')}"
            raise TemplateSyntaxError(
                f"{name} is a function, not a value: it cannot be output, cannot be given to"
                " a filter and cannot be turned into text (call it)",
                node.lineno,
                part,
            )


def check_syntax(templates_dir: Path, part: str, source: str) -> None:
    """Raise TemplateSyntaxError (with ``lineno``) for a template that does not compile,
    TemplateNotFound for a layout or partial that does not exist."""
    env = _environment(templates_dir)
    tree = env.parse(source, name=part)
    _no_function_values(env, tree, part)
    env.compile(tree, name=part)
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        target = node.template  # type: ignore[attr-defined]
        if isinstance(target, nodes.Const) and isinstance(target.value, str):
            try:
                env.get_template(target.value)
            except TemplateNotFound as exc:
                if getattr(node, "ignore_missing", False):
                    continue
                raise TemplateSyntaxError(
                    f"template {target.value!r} not found", node.lineno, part
                ) from exc


def compile_template(
    templates_dir: Path, subject: str, html: str, text: str | None
) -> CompiledTemplate:
    env = _environment(templates_dir)
    return CompiledTemplate(
        subject=_compile(env, "subject", subject),
        html=_compile(env, "html", html),
        text=_compile(env, "text", text) if text is not None else None,
        straight=all(
            _straight(env, env.parse(source, name=part))
            for part, source in (("subject", subject), ("html", html), ("text", text or ""))
        ),
    )


# filters whose cost is about the size of their input and output
_CHEAP_FILTERS = frozenset(
    {
        "abs", "attr", "capitalize", "center", "count", "d", "default", "e", "escape",
        "filesizeformat", "first", "float", "forceescape", "format", "int", "last",
        "length", "lower", "replace", "round", "safe", "string", "striptags", "title",
        "trim", "truncate", "upper", "urlencode", "wordcount",
    }
)  # fmt: skip
_LOOPS_AND_CALLS = (nodes.For, nodes.Macro, nodes.CallBlock, nodes.Call, nodes.FilterBlock)
_LOADS = (nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)


def _straight(env: BoundedEnvironment, tree: nodes.Template, depth: int = 0) -> bool:
    """No loop, macro, call or costly filter in ``tree`` or the layouts it loads."""
    if depth > 8 or any(True for _ in tree.find_all(_LOOPS_AND_CALLS)):
        return False
    if any(f.name not in _CHEAP_FILTERS for f in tree.find_all(nodes.Filter)):
        return False
    for node in tree.find_all(_LOADS):
        target = node.template  # type: ignore[attr-defined]
        if not (isinstance(target, nodes.Const) and isinstance(target.value, str)):
            return False
        try:
            source = env.loader.get_source(env, target.value)[0]  # type: ignore[union-attr]
            if not _straight(env, env.parse(source, name=target.value), depth + 1):
                return False
        except TemplateError:
            return False
    return True


# Compiled templates: one per template version (versions are immutable) and one per
# distinct inline content of transactional messages
MAX_COMPILED = 256
_COMPILED: OrderedDict[tuple[Any, ...], CompiledTemplate] = OrderedDict()
_COMPILED_LOCK = threading.Lock()


def _cached(key: tuple[Any, ...]) -> CompiledTemplate | None:
    with _COMPILED_LOCK:
        found = _COMPILED.get(key)
        if found is not None:
            _COMPILED.move_to_end(key)
        return found


def compiled_version(
    templates_dir: Path, version_id: int | None, subject: str, html: str, text: str | None
) -> CompiledTemplate:
    """Compiled once per template version (``version_id`` None: inline content)."""
    key = (templates_dir, version_id, subject, html, text)
    found = _cached(key)
    if found is None:
        found = compile_template(templates_dir, subject, html, text)
        with _COMPILED_LOCK:
            _COMPILED[key] = found
            while len(_COMPILED) > MAX_COMPILED:
                _COMPILED.popitem(last=False)
    return found


# Where a worker renders. A straight template (no loop, macro, call or costly filter: its
# render costs about its output, a few ms at the output limit) runs its Jinja part on the
# event loop, under a short slice (INLINE_SECONDS) as a backstop; so does filling in the
# holes of a known output shape, the fast path of campaign mail. Everything else runs in
# a thread with the full budget: other templates, a render over its slice (run again,
# whole), compiling, deriving a new shape and the full path (CSS inlining, text
# conversion: inscriptis takes ~1 s for 300 KB of HTML). A runaway then holds one of
# RENDER_THREADS threads for at most its budget: the event loop keeps turning (renewing
# leases, recording SES answers), sharing the GIL with it. Memory needs no process
# boundary: every step is sized before it allocates (budget.py).
RENDER_THREADS = 2
INLINE_SECONDS = 0.005
INLINE_CHARS = 100_000  # output the fast path fills in on the loop (microseconds)
_POOL = ThreadPoolExecutor(RENDER_THREADS, thread_name_prefix="render")


async def render_off_loop(template: CompiledTemplate, context: dict[str, Any]) -> Rendered:
    """``template.render(context)`` as an event loop should call it (see above)."""
    loop = asyncio.get_running_loop()
    if not template.straight:
        return await loop.run_in_executor(_POOL, template.render, context)
    try:
        filled = template.fill(context, INLINE_SECONDS)
    except SliceOver:
        return await loop.run_in_executor(_POOL, template.render, context)
    done = template.finish(filled, slow=False)
    if done is None:
        done = await loop.run_in_executor(_POOL, template.finish, filled, True)
    assert done is not None  # noqa: S101 - slow=True always finishes
    return done


async def compiled_off_loop(
    templates_dir: Path, version_id: int | None, subject: str, html: str, text: str | None
) -> CompiledTemplate:
    """:func:`compiled_version`, compiling (a cache miss) in a render thread."""
    found = _cached((templates_dir, version_id, subject, html, text))
    if found is not None:
        return found
    return await asyncio.get_running_loop().run_in_executor(
        _POOL, compiled_version, templates_dir, version_id, subject, html, text
    )


def message_context(
    email: str,
    contact: Any,
    data: dict[str, Any] | None,
    unsubscribe_url: str,
    postal_address: str,
    campaign: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What a template sees (docs/templates.md): ``contact`` (a row with ``attributes``
    and ``tags``, or None for a recipient who is not a contact), ``data``,
    ``unsubscribe_url``, ``postal_address`` and, for campaign mail, ``campaign``."""
    context: dict[str, Any] = {
        "contact": {
            "email": email,
            "attributes": contact.attributes if contact is not None else {},
            "tags": list(contact.tags) if contact is not None else [],
        },
        "data": data or {},
        "unsubscribe_url": unsubscribe_url,
        "postal_address": postal_address,
    }
    if campaign is not None:
        context["campaign"] = campaign
    return context


def render_problem(template: CompiledTemplate, context: dict[str, Any]) -> str | None:
    """None when the message renders; else which part fails and why, for a 422 at the
    door ("html: template error: 'dict object' has no attribute 'code'")."""
    try:
        template.render(context)
    except RenderError as exc:
        for part in PARTS:
            piece = getattr(template, part)
            if piece is None:
                continue
            try:
                CompiledTemplate(subject=piece, html=piece, text=None).render(context)
            except RenderError:
                return f"{part}: {exc}"
        return str(exc)
    return None


__all__ = [
    "PARTS",
    "CompiledTemplate",
    "RenderError",
    "RenderLimitError",
    "Rendered",
    "TemplateSyntaxError",
    "check_syntax",
    "compile_template",
    "compiled_off_loop",
    "compiled_version",
    "message_context",
    "render_problem",
    "html_to_text",
    "render_off_loop",
]
