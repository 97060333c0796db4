"""The fast path of campaign mail: per output shape, the inlined HTML and the derived text with
holes each message fills in (apart from the render, which falls back to the full path)."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from jinja2 import TemplateSyntaxError as TemplateSyntaxError

from mailer.template import text_part
from mailer.template.content import MAX_LINE, fold_html, fold_text
from mailer.template.html_output import html_to_text, inline_css

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
PLAIN_VALUES = re.compile(f"{_PLAIN.pattern}(?:\ue000{_PLAIN.pattern})*+")
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
        # (``limit``: the longest line ``fold`` leaves alone, 76 columns for the text part)
        # a line without values comes out of ``fold`` the same for every message (folding
        # works line by line): fold it once here, so messages only look at lines with values
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
class DerivedShape:
    html: _Holes
    text: _Holes

    @classmethod
    def build(cls, shape: tuple[str | None, ...]) -> DerivedShape | None:
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
        inlined = inline_css(skeleton)
        text = html_to_text(inlined)
        # each value must come out exactly once in the HTML, at most once in the text
        if sorted(int(i) for i in _HOLE.findall(inlined)) != list(range(holes)):
            return None
        found = _HOLE.findall(text)
        if len(found) != len(set(found)):
            return None
        padded = html_to_text(inline_css(_HOLE.sub(lambda m: m.group(0) + _PAD, skeleton)))
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
