"""Jinja's immutable sandbox, tightened: templates are untrusted code.

What a template cannot do: reach Python internals (attributes starting with ``_``, however
they are spelt, ``str.format``/``format_map``), use Jinja's own globals (``cycler``,
``joiner``, ``namespace``, ``lipsum``, ``dict``; ``range`` is a bounded one), print what is
not data (a function's or a Jinja object's repr, ``<built-in method … at 0x…>``), or run
unbounded. Every render has a budget (:mod:`mailer.template.budget`): loop iterations in
total, call depth (macros calling themselves), characters produced and time (its thread's
CPU time; the wall clock for a slice on the event loop). Every operation that could take
long or allocate much in one step (``*``, ``**``, ``%``, ``+``, ``~``, string methods, every
filter) is sized from its inputs before it runs, so neither
the time bound nor memory depends on Python being able to interrupt one huge C call; and
no filter is run at compile time (Jinja folds constant expressions while compiling). A
limit stops the render with :class:`RenderLimitError` naming it.
"""

from __future__ import annotations

import operator
import types
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context, LoopContext, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import pass_environment, pass_eval_context
from markupsafe import Markup, escape
from markupsafe import _escape_inner as _escape_inner  # type: ignore[attr-defined]

from mailer.template.budget import (
    MAX_CALL_DEPTH,
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT_CHARS,
    MAX_RANGE,
    MAX_RENDER_SECONDS,
    Budget,
    RenderError,
    RenderLimitError,
    SliceOver,
    budget,
    current,
    text_size,
)
from mailer.template.budget import _current as _current
from mailer.template.guards import (
    check_result,
    guarded_add,
    guarded_concat,
    guarded_filter,
    guarded_join,
    guarded_mod,
    guarded_mul,
    guarded_pow,
    guarded_sum,
    sized_call,
)

_PRINTABLE = (int, float, bool, type(None), list, tuple, dict, Decimal)


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` output is counted against the output limit; only data is printed
    (a function or a Jinja object would show what Python holds underneath)."""
    if isinstance(value, str):
        s = value
    elif isinstance(value, _PRINTABLE):
        text_size(value)  # before str() builds it; SecurityError for what is not data
        s = str(value)
    elif isinstance(value, Undefined):
        s = str(value)  # StrictUndefined raises here, naming the variable
    else:
        raise SecurityError(f"a {type(value).__name__} cannot be output")
    b = _current()
    b.chars += len(s)
    if b.chars > MAX_OUTPUT_CHARS:
        b.charge(0)
    return s


_new_str = str.__new__


def _out_text(value: Any) -> str:
    """``{{ value }}`` in the subject or the text part: finalized, not escaped."""
    if type(value) is str:
        b = _current()
        b.chars += len(value)
        if b.chars > MAX_OUTPUT_CHARS:
            b.charge(0)
        return value
    return str(_finalize(value))


def _out_html(value: Any) -> Markup:
    """``{{ value }}`` in HTML: finalized and escaped in one call (the hot path)."""
    if type(value) is str:
        b = _current()
        b.chars += len(value)
        if b.chars > MAX_OUTPUT_CHARS:
            b.charge(0)
        # str.__new__: Markup's own __new__ is Python code, and the text is escaped here
        return _new_str(Markup, _escape_inner(value))
    s = _finalize(value)
    if not hasattr(s, "__html__"):
        current().need(5 * len(s))  # escaping makes up to 5 characters of one
    return escape(s)


def _loop_guard(iterable: Iterable[Any], static_chars: int = 0) -> Iterator[Any]:
    """Wraps the iterable of every ``{% for %}``: counts iterations and the template text
    the body repeats, and watches the clock."""
    b = current()
    for item in iterable:
        b.tick()
        b.iterations += 1
        if b.iterations > MAX_LOOP_ITERATIONS:
            raise RenderLimitError(
                f"loop limit: more than {MAX_LOOP_ITERATIONS:,} loop iterations in one render"
            )
        if static_chars:
            b.charge(static_chars)
        yield item


def _bounded_range(*args: int) -> range:
    r = range(*args)
    if len(r) > MAX_RANGE:
        raise RenderLimitError(f"range limit: range() of {len(r):,} items is over {MAX_RANGE:,}")
    return r


_DICT_NAMES = frozenset(dir(dict))


class _Guards(CodeGenerator):
    """``a ~ b`` goes through the sandbox's bounded join; ``{{ }}`` in HTML is finalized
    and escaped in one call; ``a.b`` on a plain dict is its item, inline."""

    def _output_child_pre(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile:
            super()._output_child_pre(node, frame, finalize)
        else:
            self.write(
                "environment.out_html(" if frame.eval_ctx.autoescape else "environment.out_text("
            )

    def _output_child_post(self, node: nodes.Expr, frame: Frame, finalize: Any) -> None:
        if frame.eval_ctx.volatile:
            super()._output_child_post(node, frame, finalize)
        else:
            self.write(")")

    def _output_child_to_const(self, node: nodes.Expr, frame: Frame, finalize: Any) -> str:
        # Jinja escapes a constant before finalizing it: the escaped repr of a method
        # (``{{ 'abc'.split }}``) would be printed. What is not data is left to the
        # render, which refuses it.
        if not isinstance(node, nodes.TemplateData):
            text_size(node.as_const(frame.eval_ctx))
            # and ``'x' ~ ''.split`` folds into a string holding the method's repr
            concats = [node] if isinstance(node, nodes.Concat) else []
            for concat in [*concats, *node.find_all(nodes.Concat)]:
                for part in concat.nodes:
                    text_size(part.as_const(frame.eval_ctx))
        return super()._output_child_to_const(node, frame, finalize)  # type: ignore[no-any-return]

    def visit_Getattr(self, node: nodes.Getattr, frame: Frame) -> None:
        attr = node.attr
        if attr in _DICT_NAMES or attr.startswith("_") or self.environment.is_async:
            super().visit_Getattr(node, frame)
            return
        # the key of a plain dict (no dict method is called that: checked here, once)
        self.write(
            f"((_ga[{attr!r}] if {attr!r} in _ga else environment.getattr(_ga, {attr!r}))"
            " if type(_ga := ("
        )
        self.visit(node.node, frame)
        self.write(f")) is dict else environment.getattr(_ga, {attr!r}))")

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.bounded_concat((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


def _static_chars(body: list[nodes.Node]) -> int:
    """Template text a loop body outputs once per iteration (nested loops count their own)."""
    total = 0
    stack: list[nodes.Node] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.TemplateData):
            total += len(node.data)
        elif not isinstance(node, nodes.For):
            stack.extend(node.iter_child_nodes())
    return total


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    code_generator_class = _Guards
    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, loader: BaseLoader, autoescape: Callable[[str | None], bool]) -> None:
        super().__init__(
            loader=loader,
            undefined=StrictUndefined,
            autoescape=autoescape,
            finalize=_finalize,
            auto_reload=False,
            # Jinja's optimizer folds constant expressions into the code; ``'x' ~ ''.split``
            # would become a constant string holding the method's repr
            optimized=False,
        )
        self.globals.clear()
        self.globals["range"] = _bounded_range
        self.filters["join"] = pass_eval_context(guarded_join)
        self.filters["sum"] = pass_environment(guarded_sum)
        for name, function in list(self.filters.items()):
            self.filters[name] = guarded_filter(name, function)
        self.filters["loop guard"] = _loop_guard  # not a name a template can write
        self.binop_table = {
            **self.binop_table,
            "*": guarded_mul,
            "**": guarded_pow,
            "%": guarded_mod,
            "+": guarded_add,
            "//": operator.floordiv,
        }
        self.bounded_concat = guarded_concat
        self.out_html = _out_html
        self.out_text = _out_text
        self._loaded: dict[str, Template] = {}

    def get_template(self, name: Any, parent: str | None = None, globals: Any = None) -> Template:
        # every render of a child template asks for its layout: a dict, not the locked LRU
        if type(name) is str and globals is None:
            found = self._loaded.get(name)
            if found is None:
                found = self._loaded[name] = super().get_template(name, parent)
            return found
        return super().get_template(name, parent, globals)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            args: list[nodes.Expr] = [nodes.Const(_static_chars(loop.body))]
            loop.iter = nodes.Filter(
                loop.iter, "loop guard", args, [], None, None, lineno=loop.lineno
            )
        return tree

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_") or attr in ("format", "format_map", "mro"):
            return False
        return super().is_safe_attribute(obj, attr, value)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        if (
            isinstance(value, types.BuiltinMethodType)
            and value.__name__ in ("format", "format_map")
            and isinstance(value.__self__, str)
        ):

            def refused(*args: Any, **kwargs: Any) -> str:
                raise SecurityError("str.format is not allowed in templates; use the format filter")

            return refused
        return None

    def call(
        __self,
        __context: Context,
        __obj: Any,
        *args: Any,  # noqa: N805
        **kwargs: Any,
    ) -> Any:
        b = current()
        b.tick()
        if isinstance(__obj, types.BuiltinMethodType):
            args = sized_call(__obj, args, kwargs)
        if isinstance(__obj, LoopContext) and args:  # loop(children) of a recursive loop
            args = (_loop_guard(args[0]), *args[1:])
        if b.depth >= MAX_CALL_DEPTH:
            raise RenderLimitError(f"recursion limit: calls nested more than {MAX_CALL_DEPTH} deep")
        b.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            b.depth -= 1
        return check_result(result)


__all__ = [
    "MAX_CALL_DEPTH",
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT_CHARS",
    "MAX_RANGE",
    "MAX_RENDER_SECONDS",
    "BoundedEnvironment",
    "Budget",
    "RenderError",
    "RenderLimitError",
    "SliceOver",
    "budget",
    "current",
]
