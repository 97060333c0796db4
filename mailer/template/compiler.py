"""Templates compiled: the sandboxed environment, the checks made when a template is saved,
and the cache of compiled versions (apart from the render, which runs once per message).

Templates are compiled once per template version and cached; layouts and partials come
from the ``templates/`` folder (``{% extends "layouts/default.html" %}``).
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, Template, TemplateError, TemplateNotFound, nodes
from jinja2 import TemplateSyntaxError as TemplateSyntaxError
from jinja2.runtime import EvalContext, Undefined

from mailer.template.render import RENDER_POOL, CompiledTemplate
from mailer.template.sandbox import (
    BoundedEnvironment,
)


def _autoescape(name: str | None) -> bool:
    return name not in ("subject", "text") and not (name or "").endswith(".txt")


@lru_cache(maxsize=8)
def _files_loader(templates_dir: str) -> FileSystemLoader:
    return FileSystemLoader(templates_dir)


def template_environment(templates_dir: Path) -> BoundedEnvironment:
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
    env = template_environment(templates_dir)
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
    env = template_environment(templates_dir)
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


def cached_version(key: tuple[Any, ...]) -> CompiledTemplate | None:
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
    found = cached_version(key)
    if found is None:
        found = compile_template(templates_dir, subject, html, text)
        with _COMPILED_LOCK:
            _COMPILED[key] = found
            while len(_COMPILED) > MAX_COMPILED:
                _COMPILED.popitem(last=False)
    return found


async def compiled_off_loop(
    templates_dir: Path, version_id: int | None, subject: str, html: str, text: str | None
) -> CompiledTemplate:
    """:func:`compiled_version`, compiling (a cache miss) in a render thread."""
    found = cached_version((templates_dir, version_id, subject, html, text))
    if found is not None:
        return found
    return await asyncio.get_running_loop().run_in_executor(
        RENDER_POOL, compiled_version, templates_dir, version_id, subject, html, text
    )
