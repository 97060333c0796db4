"""The sandbox's guarded operations: ``*``, ``**``, ``+``, ``%``, ``~``, every filter and the
methods of text, each sized from its inputs before it runs (apart from the environment that
installs them in :mod:`mailer.template.sandbox`)."""

from __future__ import annotations

import types
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from jinja2.filters import FILTERS, make_attrgetter
from jinja2.runtime import Context, TemplateReference, Undefined
from jinja2.sandbox import SecurityError
from jinja2.utils import _PassArg, pass_context
from markupsafe import Markup
from markupsafe import _escape_inner as _escape_inner  # type: ignore[attr-defined]

from mailer.template.budget import (
    MAX_INT_BITS,
    MAX_SEQUENCE,
    RenderLimitError,
    current,
    joined,
    limit_width,
    printf,
    sequence,
    text_size,
)
from mailer.template.filter_sizes import FILTER_SIZES, METHOD_SIZES, SEQUENCE_FILTERS

_SCALARS = (str, int, float, bool, type(None), Decimal)


def _sized(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple | bytes) else None


def check_result(value: Any) -> Any:
    if isinstance(value, str | bytes):
        current().charge(len(value))
    elif isinstance(value, list | tuple | dict) and len(value) > MAX_SEQUENCE:
        raise RenderLimitError(f"sequence limit: a list of more than {MAX_SEQUENCE:,} items")
    return value


def _int_bits(value: Any) -> int:
    return value.bit_length() if isinstance(value, int) else 0


def guarded_mul(left: Any, right: Any) -> Any:
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
    return check_result(left * right)


def guarded_pow(left: Any, right: Any) -> Any:
    if (
        isinstance(left, int)
        and isinstance(right, int)
        and right > 0
        and abs(left) > 1
        and (right > MAX_INT_BITS or _int_bits(left) * right > MAX_INT_BITS)
    ):
        raise RenderLimitError(f"number limit: a power over {MAX_INT_BITS:,} bits")
    return left**right


def guarded_add(left: Any, right: Any) -> Any:
    a, b = _sized(left), _sized(right)
    if a is not None and b is not None:
        if isinstance(left, str):
            current().need(a + b)
        elif a + b > MAX_SEQUENCE:
            raise RenderLimitError(
                f"sequence limit: joining {a + b:,} items is over {MAX_SEQUENCE:,}"
            )
    return check_result(left + right)


def guarded_mod(left: Any, right: Any) -> Any:
    if isinstance(left, str):
        # "%s" % data only: no %(key)s lookups into objects, no widths that allocate much
        printf(left, right)
        return check_result(left % right)
    return left % right


def guarded_concat(values: tuple[Any, ...]) -> str:
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


def guarded_join(eval_ctx: Any, value: Any, d: Any = "", attribute: Any = None) -> Any:
    """Jinja's join, its items (after ``attribute``) sized and checked before joining."""
    items = list(value)
    if attribute is not None:
        get = make_attrgetter(eval_ctx.environment, attribute)
        items = [get(item) for item in items]
    joined(items, d)
    return _JINJA_JOIN(eval_ctx, items, d)


def guarded_sum(environment: Any, iterable: Any, attribute: Any = None, start: Any = 0) -> Any:
    if not isinstance(start, int | float):
        raise RenderLimitError("sum limit: sum() adds numbers only")
    return _JINJA_SUM(environment, iterable, attribute, start)


# filters that give back (part of) text that exists already: counting it again would halve
# the output limit for ``{{ body|safe }}``
_NO_NEW_TEXT = frozenset(
    {"attr", "d", "default", "first", "last", "max", "min", "random", "safe", "string",
     "striptags", "trim", "truncate"}
)  # fmt: skip


def guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
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
            return check_result(result)
        if isinstance(result, list | tuple | dict) and len(result) > MAX_SEQUENCE:
            check_result(result)
        return result

    wrapper.__name__ = getattr(function, "__name__", name)
    return wrapper


def sized_call(method: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
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
