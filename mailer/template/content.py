"""What mailbox providers expect of a message's content and headers.

- no line over 998 characters (RFC 5322 2.1.1): :func:`fold_html` breaks long lines where
  a line break changes nothing (whitespace between words or attributes); :func:`fold_text`
  wraps the text part near 76 columns without splitting a URL;
- marketing mail carries ``List-Unsubscribe`` (https and mailto) and
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058); transactional mail only
  when asked (:func:`mail_headers`);
- MJML is compiled to HTML once, when the template is saved (:func:`mjml_to_html`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

import mrml

from mailer.template.text_part import wrap_text

MAX_LINE = 998  # octets, without the CRLF
_SAFE_CHARS = MAX_LINE // 4  # a line of this many characters fits whatever they are in UTF-8

_TOKEN = re.compile(r"<!--.*?-->|<[^>]*>?|[^<]+", re.S)
# whitespace in a tag that is followed by an attribute name: a break there changes nothing
_ATTR_GAP = re.compile(r"\s+(?=[A-Za-z_:][-\w:.]*=[\"'])")
_SPACE = re.compile(r"[ \t]")


def _octets(line: str) -> int:
    return len(line) if len(line) <= _SAFE_CHARS and line.isascii() else len(line.encode())


def _fold(line: str, breaks: list[int]) -> str:
    """Replace the whitespace at some of ``breaks`` (sorted offsets) with newlines so that
    no piece is longer than MAX_LINE octets; a piece without a break point is split hard."""
    out: list[str] = []
    start = 0
    last = -1
    for at in [*breaks, len(line)]:
        while _octets(line[start:at]) > MAX_LINE:
            if last >= start:
                out.append(line[start:last])
                start = last + 1
                last = -1
            else:
                fits = len(line[start:].encode()[:MAX_LINE].decode("utf-8", "ignore"))
                out.append(line[start : start + fits])
                start += fits
        last = at
    out.append(line[start:])
    return "\n".join(out)


def _html_breaks(line: str) -> list[int]:
    """Where a line of HTML may be broken: whitespace between words of text, and before
    an attribute inside a tag (never in a comment)."""
    breaks: list[int] = []
    for token in _TOKEN.finditer(line):
        text = token.group()
        if text.startswith("<!--"):
            continue
        gaps = _ATTR_GAP if text.startswith("<") else _SPACE
        breaks.extend(token.start() + m.start() for m in gaps.finditer(text))
    return breaks


def _fold_ascii(line: str, last_break: Callable[[int, int], int]) -> str:
    """:func:`_fold` for an ASCII line (one octet a character), asking ``last_break`` for
    the last break point in ``[start, limit]`` (or -1) at each cut instead of listing them
    all: the same pieces, without walking every word of a long line."""
    out: list[str] = []
    start = 0
    while len(line) - start > MAX_LINE:
        at = last_break(start, start + MAX_LINE)
        if at >= start:
            out.append(line[start:at])
            start = at + 1
        else:
            out.append(line[start : start + MAX_LINE])
            start += MAX_LINE
    out.append(line[start:])
    return "\n".join(out)


def _last_space(line: str, start: int, limit: int) -> int:
    """The last space or tab of ``line[start : limit + 1]`` (its offset in ``line``), or -1."""
    return max(line.rfind(" ", start, limit + 1), line.rfind("\t", start, limit + 1))


def _last_html_break(line: str) -> Callable[[int, int], int]:
    """The last of :func:`_html_breaks` in ``[start, limit]``, for a line with no comment.

    Every ``<`` opens a tag or lies inside one (text is ``[^<]+``), and a tag runs to the
    first ``>`` after it: a position is in a tag exactly when the last ``<`` before it has
    no ``>`` between them. Walking back from ``limit``, text is searched for a space or a
    tab, a tag for its attribute gaps.
    """

    def last_break(start: int, limit: int) -> int:
        pos = limit
        while pos >= start:
            lt = line.rfind("<", 0, pos + 1)
            gt = line.find(">", lt, pos) if lt >= 0 else -1
            if lt < 0 or gt >= 0:  # pos is in text, which begins after the tag's ">"
                begin = max(start, gt + 1)
                at = _last_space(line, begin, pos)
                if at >= begin:
                    return at
                pos = begin - 1
                continue
            end = line.find(">", lt)
            tag = line[lt : end + 1] if end >= 0 else line[lt:]
            gaps = [lt + m.start() for m in _ATTR_GAP.finditer(tag)]
            for at in reversed(gaps):
                if start <= at <= pos:
                    return at
            pos = lt - 1
        return -1

    return last_break


def _fold_lines(s: str, fold_ascii: Callable[[str], str], fold_other: Callable[[str], str]) -> str:
    """``s`` with each line over MAX_LINE octets folded (``s`` itself when none is)."""
    if len(s) <= _SAFE_CHARS:
        return s
    lines = s.split("\n")
    folded = False
    for i, line in enumerate(lines):
        if len(line) <= _SAFE_CHARS:
            continue
        if line.isascii():
            if len(line) > MAX_LINE:
                lines[i] = fold_ascii(line)
                folded = True
        elif len(line.encode()) > MAX_LINE:
            lines[i] = fold_other(line)
            folded = True
    return "\n".join(lines) if folded else s


def _fold_html_ascii(line: str) -> str:
    if "<!--" in line:
        return _fold(line, _html_breaks(line))
    return _fold_ascii(line, _last_html_break(line))


def _fold_html_other(line: str) -> str:
    return _fold(line, _html_breaks(line))


def fold_html(html: str) -> str:
    """HTML with no line over 998 characters, rendering the same."""
    return _fold_lines(html, _fold_html_ascii, _fold_html_other)


def fold_text(text: str) -> str:
    """Plain text wrapped near 76 columns, never inside a URL; no line over 998 octets
    but one that is a single URL (:mod:`mailer.template.text_part`)."""
    return wrap_text(text)


def mail_headers(
    mail_class: str,
    unsubscribe_url: str | None,
    mailto: str | None = None,
    *,
    list_unsubscribe: bool | None = None,
) -> dict[str, str]:
    """Headers of one message by mail class.

    Marketing mail always carries one-click List-Unsubscribe (RFC 8058: an https URL that
    takes POST, and a mailto); other classes only when ``list_unsubscribe`` asks for it.
    """
    wanted = mail_class == "marketing" or bool(list_unsubscribe)
    if not wanted or not unsubscribe_url:
        return {}
    targets = [f"<{unsubscribe_url}>"]
    if mailto:
        targets.append(f"<{mailto}>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


class MjmlError(ValueError):
    """MJML that does not compile; the message says where."""


def mjml_to_html(source: str) -> str:
    """Compile MJML (with MRML, the Rust port) to HTML; ``mj-include`` cannot read files."""
    options = mrml.ParserOptions(include_loader=mrml.noop_loader())
    try:
        output = mrml.to_html(source, parser_options=options)
    except Exception as exc:  # noqa: BLE001 - mrml raises OSError/ValueError with the position
        raise MjmlError(str(exc)) from exc
    return str(output.content)


__all__ = [
    "MAX_LINE",
    "MjmlError",
    "fold_html",
    "fold_text",
    "mail_headers",
    "mjml_to_html",
]
