"""The plain-text part as mail clients and spam filters expect it.

- links read ``text <url>`` (not Markdown's ``[text](url)``); an image link reads as the
  image's alt text (or title) followed by the URL;
- lines wrap near 76 columns at spaces, and a URL is never split: a URL longer than the
  line goes on a line of its own. Only such a line may pass 998 octets (RFC 5322 2.1.1):
  SES sends the part quoted-printable, whose soft line breaks keep every line on the wire
  under 76 octets and give the reader the URL whole. Any other word over 998 octets is
  cut (no reader needs it whole).

Wrapping works line by line (each line of the result comes from one line of the input)
and wrapping a wrapped text changes nothing: the render's fast path wraps the lines of a
template once and only the lines that hold a message's values per message.
"""

from __future__ import annotations

import re
from typing import Any

TEXT_WIDTH = 76
MAX_LINE = 998  # octets, without the CRLF
# what a reader's client turns into a link: never cut
_URL = re.compile(r"<?(?:[a-z][a-z0-9+.-]*://|mailto:|www\.)\S+", re.I)
_INDENT = re.compile(r"[ \t]*")


def a_start(state: Any, attrs: dict[str, str]) -> None:
    """``<a href>``: nothing before the link text (no ``[``)."""
    href = (attrs.get("href") or "").strip()
    state.link_target = href if href and not href.startswith("#") else ""


def a_end(state: Any) -> None:
    """``</a>``: `` <url>`` after the link text."""
    if state.link_target:
        state.tags[-1].write(f" <{state.link_target}>")
    state.link_target = ""


def img_start(state: Any, attrs: dict[str, str]) -> None:
    """``<img>``: its alt text (or title) as words; nothing for a decorative image."""
    text = " ".join((attrs.get("alt") or attrs.get("title") or "").split())
    if text:
        state.tags[-1].write(text)


START_HANDLERS = {"a": a_start, "img": img_start}
END_HANDLERS = {"a": a_end}


def _cut(word: str) -> list[str]:
    """A word over MAX_LINE octets that is not a URL, in pieces of at most MAX_LINE."""
    pieces: list[str] = []
    while len(word.encode()) > MAX_LINE:
        fits = len(word.encode()[:MAX_LINE].decode("utf-8", "ignore"))
        pieces.append(word[:fits])
        word = word[fits:]
    return [*pieces, word]


def wrap_line(line: str, width: int = TEXT_WIDTH) -> str:
    """One line wrapped at spaces to ``width`` columns, its indentation repeated; a word
    longer than ``width`` stands on a line of its own, whole when it is a URL."""
    # cut by searching for spaces (a render wraps a line or two with values in them per
    # message: this is on the hot path); a word longer than the line is met at the start
    # of ``rest``, and only there is it checked for a run that may pass 998 octets
    indent = _INDENT.match(line).group()  # type: ignore[union-attr]
    rest = line[len(indent) :]
    room = width - len(indent)
    if room <= 0 and len(line) > _SAFE_WORD and _LONG_WORD.search(line):
        return _wrap_words(line, width)  # indented past the width: checked here, whole
    out: list[str] = []
    while len(rest) > room:
        cut = rest.rfind(" ", 0, room + 1)
        if cut <= 0:  # a word longer than the line: on a line of its own
            cut = rest.find(" ", 1)
            word = rest[:cut] if cut > 0 else rest
            if len(word) > _SAFE_WORD and _LONG_WORD.search(word):
                return _wrap_words(line, width)  # it may pass 998 octets: cut unless a URL
            if cut < 0:
                break
        out.append(indent + rest[:cut].rstrip(" "))
        rest = rest[cut + 1 :].lstrip(" ")
    out.append(indent + rest)
    return "\n".join(out)


_SAFE_WORD = MAX_LINE // 4  # a word of at most this many characters fits in 998 octets
_LONG_WORD = re.compile(rf"\S{{{_SAFE_WORD + 1},}}")


def _wrap_words(line: str, width: int) -> str:
    """:func:`wrap_line` word by word, for a line with a word that may pass 998 octets."""
    indent = _INDENT.match(line).group()  # type: ignore[union-attr]
    out: list[str] = []
    current = ""
    for word in line[len(indent) :].split():
        long = len(word.encode()) > MAX_LINE and not _URL.match(word)
        pieces = _cut(word) if long else [word]
        for piece in pieces:
            if current and len(indent) + len(current) + 1 + len(piece) <= width:
                current += " " + piece
                continue
            if current:
                out.append(indent + current)
            current = piece
    if current or not out:
        out.append(indent + current)
    return "\n".join(out)


def wrap_text(text: str, width: int = TEXT_WIDTH) -> str:
    """``text`` with every line over ``width`` columns wrapped (``text`` itself when none
    is)."""
    if len(text) <= width:
        return text
    lines = text.split("\n")
    changed = False
    for i, line in enumerate(lines):
        if len(line) > width:
            wrapped = wrap_line(line, width)
            if wrapped != line:
                lines[i] = wrapped
                changed = True
    return "\n".join(lines) if changed else text
