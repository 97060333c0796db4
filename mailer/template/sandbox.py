"""Jinja's immutable sandbox, tightened: templates are untrusted code.

What a template cannot do: reach Python internals (attributes starting with ``_``, however
they are spelt, ``str.format``/``format_map``), use Jinja's own globals (``cycler``,
``joiner``, ``namespace``, ``lipsum``, ``dict``; ``range`` is a bounded one), or run
unbounded. Every render has a budget (:class:`Budget`): loop iterations in total, call depth
(macros calling themselves), characters produced and wall time. Operations that could
take long or allocate much in one step (``*``, ``**``, ``%``, ``+``, ``~``, string
methods, the filters that pad, repeat or join) are checked before they run, so the time
bound also holds where Python cannot interrupt (one huge multiplication). A limit stops
the render with :class:`RenderLimitError` naming it.
"""

from __future__ import annotations

import operator
import re
import time
import types
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from decimal import Decimal
from typing import Any

from jinja2 import BaseLoader, StrictUndefined, Template, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.filters import FILTERS
from jinja2.runtime import Context, LoopContext, TemplateReference, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError
from jinja2.utils import _PassArg
from markupsafe import Markup, escape
from markupsafe import _escape_inner as _escape_inner  # type: ignore[attr-defined]

MAX_RANGE = 10_000  # items of one range()
MAX_LOOP_ITERATIONS = 20_000  # all loops of one render together
MAX_CALL_DEPTH = 32  # nested macro, block and loop() calls
# characters a render produces (its output and the text it builds); also what bounds the
# time of inlining and text conversion after the render (Gmail clips mail at ~100 KB)
MAX_OUTPUT_CHARS = 300_000
MAX_SEQUENCE = 100_000  # items of a list built with * or +
MAX_INT_BITS = 16_384  # integers built with * and **
MAX_WIDTH = 1_000  # padding, indent, wrap widths, format widths, batch/slice counts
MAX_FILTER_INPUT = 200_000  # input of the slower text filters (wordwrap, urlize)
MAX_RENDER_SECONDS = 0.5


class RenderError(Exception):
    """A template failed for one recipient; the message fails with this reason."""


class RenderLimitError(RenderError):
    """A render went over one of the sandbox's limits (named in the message)."""


class Budget:
    """What one render may still use; one per render, kept per thread."""

    __slots__ = ("deadline", "iterations", "depth", "chars")

    def __init__(self, seconds: float = MAX_RENDER_SECONDS) -> None:
        self.deadline = time.perf_counter() + seconds
        self.iterations = 0
        self.depth = 0
        self.chars = 0

    def charge(self, chars: int) -> None:
        self.chars += chars
        if self.chars > MAX_OUTPUT_CHARS:
            raise RenderLimitError(
                f"output limit: the render produced more than {MAX_OUTPUT_CHARS:,} characters"
            )

    def tick(self) -> None:
        if time.perf_counter() > self.deadline:
            raise RenderLimitError(
                f"time limit: the render took longer than {MAX_RENDER_SECONDS} s"
            )


class _NoBudget(Budget):
    """Outside a render (Jinja folds constants at compile time): nothing is counted."""

    __slots__ = ()

    def charge(self, chars: int) -> None:
        self.chars = 0

    def tick(self) -> None:
        self.iterations = 0


_UNBOUNDED = _NoBudget()


# the budget of the render running in this thread or task (a context variable: previews
# render in threads, and reading one costs half of a thread-local's attribute)
_BUDGET: ContextVar[Budget] = ContextVar("render_budget", default=_UNBOUNDED)
_current = _BUDGET.get


def current() -> Budget:
    return _current()


class budget:  # noqa: N801 - used as ``with budget():``
    """Give the renders inside the block one fresh :class:`Budget`."""

    __slots__ = ("_token",)

    def __enter__(self) -> Budget:
        new = Budget()
        self._token = _BUDGET.set(new)
        return new

    def __exit__(self, *exc: object) -> None:
        _BUDGET.reset(self._token)


_SCALARS = (str, int, float, bool, type(None), Decimal)
_CONTAINERS = (list, tuple, dict, set, frozenset)
_PRINTABLE = (int, float, bool, type(None), list, tuple, dict, Decimal)


def _is_data(value: Any) -> bool:
    """Text, numbers and containers of them: what may become text. A function, a Jinja
    object or a generator would show what Python holds underneath (``<... at 0x...>``)."""
    stack = [value]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > MAX_SEQUENCE:
            return False  # more than could be printed within the output limit anyway
        if isinstance(item, _SCALARS) or isinstance(item, Undefined):  # noqa: SIM101
            continue
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, _CONTAINERS):
            stack.extend(item)
        else:
            return False
    return True


def _as_text_check(value: Any) -> None:
    if not _is_data(value):
        raise SecurityError(f"a {type(value).__name__} cannot be turned into text")


def _finalize(value: Any) -> Any:
    """Every ``{{ }}`` output is counted against the output limit; only data is printed
    (a function or a Jinja object would show what Python holds underneath)."""
    if isinstance(value, str):
        s = value
    elif isinstance(value, _PRINTABLE):
        _as_text_check(value)
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
    return escape(_finalize(value))


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
    if isinstance(value, str):
        current().charge(len(value))
    elif isinstance(value, list | tuple) and len(value) > MAX_SEQUENCE:
        raise RenderLimitError(f"sequence limit: a list of more than {MAX_SEQUENCE:,} items")
    return value


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def _mul(left: Any, right: Any) -> Any:
    for seq, times in ((left, right), (right, left)):
        size = _sized(seq)
        if size is not None and isinstance(times, int):
            limit = MAX_OUTPUT_CHARS if isinstance(seq, str) else MAX_SEQUENCE
            if size * times > limit:
                raise RenderLimitError(
                    f"output limit: repeating {size:,} items {times:,} times is over {limit:,}"
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
        limit = MAX_OUTPUT_CHARS if isinstance(left, str) else MAX_SEQUENCE
        if a + b > limit:
            raise RenderLimitError(f"output limit: joining {a + b:,} items is over {limit:,}")
    return _check_result(left + right)


# the numbers of a printf-style spec: flags, width, precision
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")


def _check_printf(spec: str) -> None:
    for width, precision in _PRINTF.findall(spec):
        for number in (width, precision):
            if number == "*" or (number and int(number) > MAX_WIDTH):
                raise RenderLimitError(f"format limit: a format width over {MAX_WIDTH:,}")


_FORMATTABLE = (str, int, float, bool, type(None), Decimal)


def _mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        # "%s" % data only: no %(key)s lookups into objects, no widths that allocate much
        _check_printf(left)
        values = (
            right.values()
            if isinstance(right, dict)
            else (right if isinstance(right, tuple) else (right,))
        )
        if not all(isinstance(v, _FORMATTABLE) for v in values):
            raise SecurityError("% formats text and numbers only")
        return _check_result(left % right)
    return left % right


def _concat(values: tuple[Any, ...]) -> str:
    """``a ~ b``: the joined length is checked before joining."""
    for v in values:
        if not isinstance(v, str):
            _as_text_check(v)
    parts = [v if isinstance(v, str) else str(v) for v in values]
    total = sum(map(len, parts))
    if total > MAX_OUTPUT_CHARS:
        raise RenderLimitError(f"output limit: joining {total:,} characters")
    current().charge(total)
    if any(hasattr(v, "__html__") for v in values):
        return Markup("").join(values)
    return "".join(parts)


def _width(name: str, value: Any, limit: int = MAX_WIDTH) -> None:
    if isinstance(value, int) and value > limit:
        raise RenderLimitError(f"{name} limit: {value:,} is over {limit:,}")
    if isinstance(value, str) and len(value) > limit:
        raise RenderLimitError(f"{name} limit: a string of {len(value):,} characters")


def _bounded_filter(name: str, check: Callable[..., None]) -> Callable[..., Any]:
    original = FILTERS[name]

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check(*args, **kwargs)
        return _check_result(original(*args, **kwargs))

    wrapper.__dict__.update(original.__dict__)  # keeps pass_environment / pass_eval_context
    wrapper.__name__ = original.__name__
    return wrapper


# filters that turn their value into text (str() of it): it must be data
_TEXT_FILTERS = frozenset(
    {
        "capitalize",
        "center",
        "e",
        "escape",
        "forceescape",
        "format",
        "indent",
        "lower",
        "pprint",
        "replace",
        "safe",
        "string",
        "striptags",
        "title",
        "trim",
        "truncate",
        "upper",
        "urlencode",
        "urlize",
        "wordcount",
        "wordwrap",
        "xmlattr",
    }
)


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """No filter takes a function or a Jinja object; text filters take data only."""
    skip = 1 if _PassArg.from_obj(function) is not None else 0
    as_text = name in _TEXT_FILTERS

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if name == "join" and len(args) > skip and not isinstance(args[skip], str):
            # join takes any iterable (a map() of a list...): its items become text
            items = list(args[skip])
            _as_text_check(items)
            args = (*args[:skip], items, *args[skip + 1 :])
        for i, value in enumerate((*args[skip:], *kwargs.values())):
            if type(value) in _SCALARS:
                continue
            if (callable(value) and not isinstance(value, Undefined)) or isinstance(
                value, TemplateReference | Context | types.ModuleType
            ):
                raise SecurityError(f"a {type(value).__name__} cannot be given to {name}")
            if as_text and i == 0:
                _as_text_check(value)
        return function(*args, **kwargs)

    wrapper.__dict__.update(getattr(function, "__dict__", {}))  # keeps pass_environment
    wrapper.__name__ = getattr(function, "__name__", name)
    return wrapper


def _args_after(skip: int) -> Callable[..., None]:
    """Check every numeric or string argument after the first ``skip`` ones as a width."""

    def check(*args: Any, **kwargs: Any) -> None:
        for value in [*args[skip:], *kwargs.values()]:
            _width("filter argument", value)

    return check


def _check_input(*args: Any, **kwargs: Any) -> None:
    text = args[1] if args and not isinstance(args[0], str) else args[0]
    if isinstance(text, str) and len(text) > MAX_FILTER_INPUT:
        raise RenderLimitError(f"filter input limit: {len(text):,} characters")
    _args_after(2)(*args, **kwargs)


def _check_format(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        _check_printf(value)
    if not all(isinstance(v, _FORMATTABLE) for v in (*args, *kwargs.values())):
        raise SecurityError("format formats text and numbers only")


def _check_join(*args: Any, **kwargs: Any) -> None:
    # join(eval_ctx, value, d="", attribute=None)
    value = args[1] if len(args) > 1 else None
    sep = args[2] if len(args) > 2 else kwargs.get("d", "")
    if (
        isinstance(value, list | tuple)
        and isinstance(sep, str)
        and (len(value) * len(sep) > MAX_OUTPUT_CHARS)
    ):
        raise RenderLimitError("output limit: join() would be too long")


def _check_replace(*args: Any, **kwargs: Any) -> None:
    # replace(eval_ctx, s, old, new, count=None)
    if len(args) >= 4:
        s, old, new = (str(a) for a in args[1:4])
        grow = (s.count(old) if old else len(s) + 1) * max(len(new) - len(old), 0)
        if len(s) + grow > MAX_OUTPUT_CHARS:
            raise RenderLimitError("output limit: replace() would be too long")


def _check_sum(*args: Any, **kwargs: Any) -> None:
    start = args[3] if len(args) > 3 else kwargs.get("start", 0)
    if not isinstance(start, int | float):
        raise RenderLimitError("sum limit: sum() adds numbers only")


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _args_after(1),
    "indent": _args_after(1),
    "batch": _args_after(1),
    "slice": _args_after(2),
    "tojson": _args_after(2),
    "wordwrap": _check_input,
    "urlize": _check_input,
    "format": _check_format,
    "join": _check_join,
    "replace": _check_replace,
    "sum": _check_sum,
}

# str methods a template may call with a size: center/ljust/rjust/zfill/expandtabs pad
_STR_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill", "expandtabs"}


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
        )
        self.globals.clear()
        self.globals["range"] = _bounded_range
        for name, check in _FILTER_CHECKS.items():
            self.filters[name] = _bounded_filter(name, check)
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
        if isinstance(__obj, types.BuiltinMethodType) and isinstance(__obj.__self__, str):
            name = __obj.__name__
            if name in _STR_WIDTH_METHODS:
                for value in (*args, *kwargs.values()):
                    _width(f"{name}() width", value)
            elif name == "replace" and len(args) >= 2:
                _check_replace(None, __obj.__self__, *args)
            elif name == "join" and args and isinstance(args[0], list | tuple):
                _check_join(None, args[0], __obj.__self__)
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
    "budget",
    "current",
]
