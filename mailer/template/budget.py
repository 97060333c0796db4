"""What one render may use, and what an operation would allocate, worked out before it runs.

A template is untrusted code: one expression like ``([s] * 3000)|join`` asks Python to build
900 MB in a single C call, which no check after the call can stop. So every operation that
can make much out of little is sized here first, from its inputs (lengths, counts, widths),
and refused when the result would take the render over its output limit; only then is it
run. The estimates are from above where that is cheap and near enough elsewhere: each
result is still counted once built (:meth:`Budget.charge`), so an estimate off by a small
factor costs at most that factor of the output limit, never the process.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from decimal import Decimal
from itertools import chain
from typing import Any

from jinja2.runtime import Undefined
from jinja2.sandbox import SecurityError

MAX_RANGE = 10_000  # items of one range()
MAX_LOOP_ITERATIONS = 20_000  # all loops of one render together
MAX_CALL_DEPTH = 32  # nested macro, block and loop() calls
# characters a render produces (its output and the text it builds); also what bounds the
# time of inlining and text conversion after the render (Gmail clips mail at ~100 KB)
MAX_OUTPUT_CHARS = 300_000
MAX_SEQUENCE = 100_000  # items of a list built with *, + or a filter
MAX_INT_BITS = 16_384  # integers built with * and **
MAX_WIDTH = 1_000  # padding, indent, wrap widths, format widths, batch/slice counts
MAX_FILTER_INPUT = 200_000  # input of the slower text filters (wordwrap, urlize)
MAX_WRAP_LINES = 20_000  # lines one wordwrap may make (textwrap costs ~20 µs a line)
MAX_RENDER_SECONDS = 0.5


class RenderError(Exception):
    """A template failed for one recipient; the message fails with this reason."""


class RenderLimitError(RenderError):
    """A render went over one of the sandbox's limits (named in the message)."""


class SliceOver(Exception):  # noqa: N818 - a signal, not a failure
    """A render given a short slice of time (on an event loop) did not finish in it: it is
    run again, whole, with the full budget where it cannot hold the loop up."""


class Budget:
    """What one render may still use; one per render, kept per thread."""

    __slots__ = ("deadline", "iterations", "depth", "chars", "sliced")

    def __init__(self, seconds: float = MAX_RENDER_SECONDS) -> None:
        self.deadline = time.perf_counter() + seconds
        self.sliced = seconds < MAX_RENDER_SECONDS
        self.iterations = 0
        self.depth = 0
        self.chars = 0

    def room(self) -> int:
        """Characters the render may still build."""
        return MAX_OUTPUT_CHARS - self.chars

    def need(self, chars: int) -> None:
        """Refuse, before it is built, text that would take the render over its limit."""
        if chars > self.room():
            raise RenderLimitError(
                f"output limit: the render would produce more than {MAX_OUTPUT_CHARS:,}"
                f" characters (one step alone would make {chars:,})"
            )

    def charge(self, chars: int) -> None:
        self.chars += chars
        if self.chars > MAX_OUTPUT_CHARS:
            raise RenderLimitError(
                f"output limit: the render produced more than {MAX_OUTPUT_CHARS:,} characters"
            )

    def tick(self) -> None:
        if time.perf_counter() > self.deadline:
            if self.sliced:
                raise SliceOver
            raise RenderLimitError(
                f"time limit: the render took longer than {MAX_RENDER_SECONDS} s"
            )


class _NoBudget(Budget):
    """Outside a render (Jinja folds constants at compile time): each step alone is
    bounded, nothing adds up."""

    __slots__ = ()

    def room(self) -> int:
        return MAX_OUTPUT_CHARS

    def charge(self, chars: int) -> None:
        self.chars = 0
        if chars > MAX_OUTPUT_CHARS:
            self.need(chars)

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
    """Give the renders inside the block one fresh :class:`Budget` of ``seconds``."""

    __slots__ = ("_token", "_seconds")

    def __init__(self, seconds: float = MAX_RENDER_SECONDS) -> None:
        self._seconds = seconds

    def __enter__(self) -> Budget:
        new = Budget(self._seconds)
        self._token = _BUDGET.set(new)
        return new

    def __exit__(self, *exc: object) -> None:
        _BUDGET.reset(self._token)


# --- the size of text --------------------------------------------------------------------

_END = object()


def text_size(value: Any, factor: int = 1, indent: int = 0) -> int:
    """``factor`` times the length of ``str(value)`` (``indent``: of JSON or pprint with
    that indent), without building it, refused past the room the render has left.

    Only data becomes text: a function, a Jinja object or a generator would show what
    Python holds underneath (``<built-in method … at 0x…>``): SecurityError. The walk
    costs one step per item and stops at the limit, so it is bounded too (a list of
    100,000 references to one list of 100,000 is not walked 10^10 times).
    """
    room = current().room() // factor
    if type(value) is str:
        size = len(value)
    else:
        size = 0
        stack: list[tuple[int, Iterator[Any]]] = [(0, iter((value,)))]
        while stack:
            depth, items = stack[-1]
            item = next(items, _END)
            if item is _END:
                stack.pop()
                continue
            if isinstance(item, str):
                size += len(item) + 2
            elif isinstance(item, bool) or item is None:
                size += 5
            elif isinstance(item, int):
                size += item.bit_length() * 3 // 10 + 2  # its decimal digits
            elif isinstance(item, float):
                size += 24
            elif isinstance(item, Decimal):
                size += len(str(item))
            elif isinstance(item, Undefined):
                pass  # StrictUndefined refuses to be text, naming the variable
            elif isinstance(item, dict):
                size += 2 + len(item) * (4 + (1 + (depth + 1) * indent if indent else 0))
                stack.append((depth + 1, chain.from_iterable(item.items())))
            elif isinstance(item, list | tuple | set | frozenset):
                size += 2 + len(item) * (2 + (1 + (depth + 1) * indent if indent else 0))
                stack.append((depth + 1, iter(item)))
            else:
                raise SecurityError(f"a {type(item).__name__} cannot be turned into text")
            if size > room:
                break
    current().need(size * factor)
    return size * factor


def as_text(value: Any) -> str:
    """``str(value)``, sized first (and refused, for what is not data)."""
    if isinstance(value, str):
        return value
    text_size(value)
    return str(value)


def limit_width(name: str, value: Any, limit: int = MAX_WIDTH) -> int:
    """A width, count or padding argument: at most ``limit`` (a string: its length)."""
    if isinstance(value, bool) or value is None:
        return 0
    if isinstance(value, int):
        if value > limit:
            raise RenderLimitError(f"{name} limit: {value:,} is over {limit:,}")
        return max(value, 0)
    if isinstance(value, str | bytes):
        if len(value) > limit:
            raise RenderLimitError(f"{name} limit: a string of {len(value):,} characters")
        return len(value)
    return 0


def sequence(value: Any, name: str) -> None:
    """A filter that lists its input (``list``, ``sort``, ``batch``…) gets at most
    MAX_SEQUENCE items (a string lists its characters)."""
    if (
        isinstance(value, str | bytes | list | tuple | dict | set | frozenset | range)
        and len(value) > MAX_SEQUENCE
    ):
        raise RenderLimitError(
            f"sequence limit: {name} of {len(value):,} items is over {MAX_SEQUENCE:,}"
        )


def joined(items: list[Any], sep: Any) -> int:
    """The length of ``sep.join(items)`` (items made text): sized before it is built."""
    sep_len = len(as_text(sep)) if not isinstance(sep, bytes) else len(sep)
    total = sep_len * max(len(items) - 1, 0)
    current().need(total)
    b = current()
    for item in items:
        total += len(item) if isinstance(item, str | bytes) else text_size(item)
        if total > b.room():
            break
    b.need(total)
    return total


# --- printf: ``%`` and the format filter ------------------------------------------------

# the numbers of a printf-style spec: flags, width, precision
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")
_FORMATTABLE = (str, int, float, bool, type(None), Decimal)


def printf(spec: str, values: Any, what: str = "%") -> int:
    """``spec % values``: text and numbers only, widths up to MAX_WIDTH, and the result
    sized first: each ``%(key)s`` may repeat its value, each ``%f`` of a float may be
    300 digits long."""
    widest = 0
    for w, precision in _PRINTF.findall(spec):
        for number in (w, precision):
            if number == "*" or (number and int(number) > MAX_WIDTH):
                raise RenderLimitError(f"format limit: a format width over {MAX_WIDTH:,}")
            widest = max(widest, int(number or 0))
    items = list(values.values()) if isinstance(values, Mapping) else None
    listed = items if items is not None else (values if isinstance(values, tuple) else (values,))
    if not all(isinstance(v, _FORMATTABLE) for v in listed):
        raise SecurityError(f"{what} formats text and numbers only")
    specs = spec.count("%")

    def one(v: Any) -> int:
        return 320 if isinstance(v, float | Decimal) else text_size(v)

    if items is not None:
        total = len(spec) + specs * (max(map(one, items), default=0) + widest)
    else:
        total = len(spec) + specs * widest + sum(map(one, listed))
    current().need(total)
    return total


# --- filters: the size of each one's result, from its arguments (its signature) ----------


def _times(factor: int) -> Any:
    """A text filter whose result is at most ``factor`` times its input's text."""

    def size(value: Any, *args: Any, **kwargs: Any) -> int:
        return text_size(value, factor)

    return size


def _center(value: Any, width: Any = 80) -> int:
    return max(text_size(value), limit_width("center width", width))


def _indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> int:
    pad = limit_width("indent width", width)
    text = as_text(s)
    return len(text) + (text.count("\n") + 1) * pad


def _replace(s: Any, old: Any, new: Any, count: Any = None) -> int:
    markup = hasattr(old, "__html__") or hasattr(new, "__html__")
    text, old_, new_ = as_text(s), as_text(old), as_text(new)
    n = text.count(old_) if old_ else len(text) + 1
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        n = min(n, count)
    # Markup on one side escapes the plain text first (up to 5 characters for one)
    return len(text) * (5 if markup else 1) + n * max(len(new_) - len(old_), 0)


def _tojson(value: Any, indent: Any = None) -> int:
    # escaped for HTML (<>&' as \u003c…) and ASCII-only: up to 6 characters for one
    return text_size(value, 6, limit_width("tojson indent", indent))


def _pprint(value: Any) -> int:
    return text_size(value, 2, 1)


def _format(value: Any, *args: Any, **kwargs: Any) -> int:
    spec = as_text(value)
    return printf(spec, kwargs or args, "format")


def _long_input(name: str, text: str) -> None:
    if len(text) > MAX_FILTER_INPUT:
        raise RenderLimitError(f"filter input limit: {name} of {len(text):,} characters")


def _wordwrap(
    s: Any,
    width: Any = 79,
    break_long_words: bool = True,
    wrapstring: Any = None,
    break_on_hyphens: bool = True,
) -> int:
    text = as_text(s)
    _long_input("wordwrap", text)
    w = max(limit_width("wordwrap width", width), 1)
    sep = limit_width("wordwrap string", wrapstring) if wrapstring is not None else 1
    # a line ends where the next word would not fit: two lines hold more than ``width``
    lines = 2 * len(text) // w + text.count("\n") + 1
    if lines > MAX_WRAP_LINES:
        raise RenderLimitError(f"wordwrap limit: over {MAX_WRAP_LINES:,} lines")
    return len(text) + lines * sep


def _urlize(
    value: Any,
    trim_url_limit: Any = None,
    nofollow: bool = False,
    target: Any = None,
    rel: Any = None,
    extra_schemes: Any = None,
) -> int:
    text = as_text(value)
    _long_input("urlize", text)
    limit_width("urlize url limit", trim_url_limit)
    each = limit_width("urlize target", target) + limit_width("urlize rel", rel) + 60
    # any word may become <a href="word" rel="…" target="…">word</a>, escaped
    return 2 * 5 * len(text) + len(text.split()) * each


def _xmlattr(d: Any, autospace: bool = True) -> int:
    return text_size(d, 6)


def _urlencode(value: Any) -> int:
    return text_size(value, 9)  # a character: up to 3 UTF-8 bytes as %XX (4: astral)


def _truncate(s: Any, length: Any = 255, killwords: bool = False, end: Any = "...", *a: Any) -> int:
    return text_size(s) + limit_width("truncate end", end)


def _trim(value: Any, chars: Any = None) -> int:
    return text_size(value)


FILTER_SIZES: dict[str, Any] = {
    "capitalize": _times(3),  # 'ﬃ'.upper() is 'FFI'
    "center": _center,
    "e": _times(5),
    "escape": _times(5),
    "forceescape": _times(5),
    "format": _format,
    "indent": _indent,
    "lower": _times(3),
    "pprint": _pprint,
    "replace": _replace,
    "safe": _times(1),
    "string": _times(1),
    "striptags": _times(1),
    "title": _times(3),
    "tojson": _tojson,
    "trim": _trim,
    "truncate": _truncate,
    "upper": _times(3),
    "urlencode": _urlencode,
    "urlize": _urlize,
    "wordcount": _times(1),
    "wordwrap": _wordwrap,
    "xmlattr": _xmlattr,
}

# filters that list their input (or items of it)
SEQUENCE_FILTERS = frozenset(
    {"batch", "dictsort", "groupby", "items", "list", "reverse", "slice", "sort", "unique"}
)


# --- methods of str and bytes, as a template may call them ------------------------------


def _pad(self: str | bytes, size: Any, *args: Any) -> int:
    return max(len(self), limit_width("padding width", size))


def _expandtabs(self: str | bytes, tabsize: Any = 8) -> int:
    tabs = self.count("\t") if isinstance(self, str) else self.count(b"\t")
    return len(self) + tabs * limit_width("expandtabs width", tabsize)


def _str_replace(self: str | bytes, old: Any, new: Any, count: Any = -1) -> int:
    if not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return len(self)  # Python refuses it
    n = self.count(old) if old else len(self) + 1  # type: ignore[arg-type]
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(self) + n * max(len(new) - len(old), 0)


def _translate(self: str | bytes, table: Any = None, *args: Any) -> int:
    if isinstance(self, bytes):
        return len(self)
    longest = 1
    if isinstance(table, Mapping):
        values: Iterable[Any] = table.values()
    elif isinstance(table, list | tuple):
        values = table
    else:
        raise SecurityError("translate takes a dict of characters")
    for v in values:
        if isinstance(v, str):
            longest = max(longest, len(v))
    return len(self) * longest


def _grows(factor: int) -> Any:
    def size(self: str | bytes, *args: Any, **kwargs: Any) -> int:
        return factor * len(self)

    return size


METHOD_SIZES: dict[str, Any] = {
    "center": _pad,
    "ljust": _pad,
    "rjust": _pad,
    "zfill": _pad,
    "expandtabs": _expandtabs,
    "replace": _str_replace,
    "translate": _translate,
    "capitalize": _grows(3),
    "casefold": _grows(3),
    "lower": _grows(3),
    "swapcase": _grows(3),
    "title": _grows(3),
    "upper": _grows(3),
    "encode": _grows(4),
    "hex": _grows(3),
}


__all__ = [
    "MAX_CALL_DEPTH",
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT_CHARS",
    "MAX_RANGE",
    "MAX_RENDER_SECONDS",
    "Budget",
    "RenderError",
    "RenderLimitError",
    "SliceOver",
    "budget",
    "current",
]
