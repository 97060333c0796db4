"""Jinja's immutable sandbox, tightened: templates are untrusted code.

What a template cannot do: reach Python internals (attributes starting with ``_``, however
they are spelt, ``str.format``/``format_map``), use Jinja's own globals (``cycler``,
``joiner``, ``namespace``, ``lipsum``, ``dict``; ``range`` is a bounded one), print what is
not data (a function's or a Jinja object's repr, ``<built-in method … at 0x…>``), or run
unbounded. Every render has a budget (:mod:`mailer.template.budget`): loop iterations in
total, call depth (macros calling themselves), characters produced and wall time. Every
operation that could take long or allocate much in one step (``*``, ``**``, ``%``, ``+``,
``~``, string methods, every filter) is sized from its inputs before it runs, so neither
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
from jinja2.filters import FILTERS, make_attrgetter
from jinja2.runtime import Context, LoopContext, TemplateReference, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import _PassArg, pass_context, pass_environment, pass_eval_context
from markupsafe import Markup, escape
from markupsafe import _escape_inner as _escape_inner  # type: ignore[attr-defined]

from mailer.template.budget import (
    MAX_CALL_DEPTH,
    MAX_INT_BITS,
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT_CHARS,
    MAX_RANGE,
    MAX_RENDER_SECONDS,
    MAX_SEQUENCE,
    Budget,
    RenderError,
    RenderLimitError,
    SliceOver,
    budget,
    current,
    joined,
    limit_width,
    printf,
    sequence,
    text_size,
)
from mailer.template.budget import _current as _current
from mailer.template.filter_sizes import FILTER_SIZES, METHOD_SIZES, SEQUENCE_FILTERS

_SCALARS = (str, int, float, bool, type(None), Decimal)
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


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple | bytes) else None


def _check_result(value: Any) -> Any:
    if isinstance(value, str | bytes):
        current().charge(len(value))
    elif isinstance(value, list | tuple | dict) and len(value) > MAX_SEQUENCE:
        raise RenderLimitError(f"sequence limit: a list of more than {MAX_SEQUENCE:,} items")
    return value


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _mul(left: Any, right: Any) -> Any:
    for seq, times in ((left, right), (right, left)):
        size = _sized(seq)
        if size is not None and isinstance(times, int):
            if isinstance(seq, str):
                current().need(size * times)
            elif size * times > MAX_SEQUENCE:
                raise RenderLimitError(
                    f"sequence limit: repeating {size:,} items {times:,} times is over"
                    f" {MAX_SEQUENCE:,}"
                )
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and (_int_bits(left) + _int_bits(right) > MAX_INT_BITS)
    ):
        raise RenderLimitError(f"number limit: a product over {MAX_INT_BITS:,} bits")
    return _check_result(left * right)


def _pow(left: Any, right: Any) -> Any:
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and abs(left) > 1
        and (right > MAX_INT_BITS or _int_bits(left) * right > MAX_INT_BITS)
    ):
        raise RenderLimitError(f"number limit: a power over {MAX_INT_BITS:,} bits")
    return left**right


def _add(left: Any, right: Any) -> Any:
    a, b = _sized(left), _sized(right)
    if a is not None and b is not None:
        if isinstance(left, str):
            current().need(a + b)
        elif a + b > MAX_SEQUENCE:
            raise RenderLimitError(
                f"sequence limit: joining {a + b:,} items is over {MAX_SEQUENCE:,}"
            )
    return _check_result(left + right)


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        # "%s" % data only: no %(key)s lookups into objects, no widths that allocate much
        printf(left, right)
        return _check_result(left % right)
    return left % right


def _concat(values: tuple[Any, ...]) -> str:
    """``a ~ b``: the joined length is checked before joining (and before anything that is
    not text is made text)."""
    total = 0
    for v in values:
        total += len(v) if isinstance(v, str) else text_size(v)
        current().need(total)
    parts = [v if isinstance(v, str) else str(v) for v in values]
    current().charge(total)
    if any(hasattr(v, "__html__") for v in values):
        return Markup("").join(values)
    return "".join(parts)


def _forbidden(value: Any) -> bool:
    """What no filter may be given: a function, a method, a Jinja object, a module."""
    return (callable(value) and not isinstance(value, Undefined)) or isinstance(
        value, TemplateReference | Context | types.ModuleType
    )


_JINJA_JOIN = FILTERS["join"]
_JINJA_SUM = FILTERS["sum"]


def _join(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> Any:
    """Jinja's join, its items (after ``attribute``) sized and checked before joining."""
    items = list(value)
    if attribute is not None:
        get = make_attrgetter(eval_ctx.environment, attribute)
        items = [get(item) for item in items]
    joined(items, d)
    return _JINJA_JOIN(eval_ctx, items, d)


def _sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    if not isinstance(start, int | float):
        raise RenderLimitError("sum limit: sum() adds numbers only")
    return _JINJA_SUM(environment, iterable, attribute, start)


# filters that give back (part of) text that exists already: counting it again would halve
# the output limit for ``{{ body|safe }}``
_NO_NEW_TEXT = frozenset(
    {"attr", "d", "default", "first", "last", "max", "min", "random", "safe", "string",
     "striptags", "trim", "truncate"}
)  # fmt: skip


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """Every filter: never given a function or a Jinja object; its result sized before it
    is built (:data:`FILTER_SIZES`), counted after. Marked ``pass_context``, which Jinja
    never calls while compiling: no filter runs in the compiler's constant folding, where
    no render's budget counts."""
    passing = _PassArg.from_obj(function)
    size = FILTER_SIZES.get(name)
    lists = name in SEQUENCE_FILTERS
    counted = name not in _NO_NEW_TEXT
    widths = name in ("batch", "slice")

    @pass_context
    def wrapper(context: Context, *args: Any, **kwargs: Any) -> Any:
        for value in (*args, *kwargs.values()):
            if type(value) not in _SCALARS and _forbidden(value):
                raise SecurityError(f"a {type(value).__name__} cannot be given to {name}")
        if size is not None:
            current().need(size(*args, **kwargs))
        if lists and args:
            sequence(args[0], name)
        if widths:
            for value in (*args[1:], *kwargs.values()):
                limit_width(f"{name} argument", value)
        if passing is None:
            result = function(*args, **kwargs)
        elif passing is _PassArg.context:
            result = function(context, *args, **kwargs)
        elif passing is _PassArg.eval_context:
            result = function(context.eval_ctx, *args, **kwargs)
        else:
            result = function(context.environment, *args, **kwargs)
        if counted:
            return _check_result(result)
        if isinstance(result, list | tuple | dict) and len(result) > MAX_SEQUENCE:
            _check_result(result)
        return result

    wrapper.__name__ = getattr(function, "__name__", name)
    return wrapper


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


def _sized_call(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """A method of text (``'x'.ljust(n)``, ``s.join(items)``, ``s.translate(table)``…) or
    ``dict.fromkeys``: its result sized before it runs. Returns the arguments to call with
    (``join`` is given its items listed once)."""
    owner = method.__self__
    name = method.__name__
    if isinstance(owner, str | bytes):
        if name == "join" and args:
            items = list(args[0])
            joined(items, owner)
            return (items, *args[1:])
        size = METHOD_SIZES.get(name)
        if size is not None:
            current().need(size(owner, *args, **kwargs))
    elif name == "fromkeys" and args:
        sequence(args[0], "fromkeys")
    return args


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
        self.filters["join"] = pass_eval_context(_join)
        self.filters["sum"] = pass_environment(_sum)
        for name, function in list(self.filters.items()):
            self.filters[name] = _guarded_filter(name, function)
        self.filters["loop guard"] = _loop_guard  # not a name a template can write
        self.binop_table = {
            **self.binop_table,
            "*": _mul,
            "**": _pow,
            "%": _mod,
            "+": _add,
            "//": operator.floordiv,
        }
        self.bounded_concat = _concat
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
            args = _sized_call(__obj, args, kwargs)
        if isinstance(__obj, LoopContext) and args:  # loop(children) of a recursive loop
            args = (_loop_guard(args[0]), *args[1:])
        if b.depth >= MAX_CALL_DEPTH:
            raise RenderLimitError(f"recursion limit: calls nested more than {MAX_CALL_DEPTH} deep")
        b.depth += 1
        try:
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            b.depth -= 1
        return _check_result(result)


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
