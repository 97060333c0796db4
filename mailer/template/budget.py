"""What one render may use, and what an operation would allocate, worked out before it runs.

A template is untrusted code: one expression like ``([s] * 3000)|join`` asks Python to build
900 MB in a single C call, which no check after the call can stop. So every operation that
can make much out of little is sized first (here; each filter and str method in
:mod:`mailer.template.filter_sizes`), from its inputs (lengths, counts, widths), and refused
when the result would take the render over its output limit; only then is it run. The
estimates are from above where that is cheap and near enough elsewhere: each result is still
counted once built (:meth:`Budget.charge`), so an estimate off by a small factor costs at
most that factor of the output limit, never the process.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Iterator, Mapping
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


class _Collections(threading.local):
    total = 0.0  # CPU seconds this thread spent in the garbage collector
    started: float | None = None


_collections = _Collections()


def _count_collection(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _collections.started = time.thread_time()
    elif _collections.started is not None:
        _collections.total += time.thread_time() - _collections.started
        _collections.started = None


gc.callbacks.append(_count_collection)


def render_cpu_time() -> float:
    """This thread's CPU time less its garbage collections': a collection of the whole heap
    that happens to start during a render is the process's work, not the template's (in a
    test process with a large heap one took the 0.5 s of a 30 ms render)."""
    return time.thread_time() - _collections.total


class Budget:
    """What one render may still use; one per render, kept per thread.

    A slice on an event loop is measured on the wall clock (it bounds how long the loop
    waits); a full render in its thread by that thread's CPU time (it bounds what the
    template costs, however busy the machine is: a loaded machine does not fail renders)."""

    __slots__ = ("clock", "deadline", "iterations", "depth", "chars", "sliced")

    def __init__(self, seconds: float = MAX_RENDER_SECONDS) -> None:
        self.sliced = seconds < MAX_RENDER_SECONDS
        self.clock = time.perf_counter if self.sliced else render_cpu_time
        self.deadline = self.clock() + seconds
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
        if self.clock() > self.deadline:
            if self.sliced:
                raise SliceOver
            raise RenderLimitError(
                f"time limit: the render took more than {MAX_RENDER_SECONDS} s of CPU time"
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
