"""What each filter and each str method a template calls would produce, sized from its
arguments before it runs (apart from the budget that the sizes are checked against)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jinja2.sandbox import SecurityError

from mailer.template.budget import (
    MAX_FILTER_INPUT,
    MAX_WRAP_LINES,
    RenderLimitError,
    as_text,
    limit_width,
    printf,
    text_size,
)

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
