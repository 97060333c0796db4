"""Content hygiene of templates, checked when they are saved.

Refused (a 422 naming each, and why): what no mail client runs and every spam filter
counts against the sender — ``<script>``, ``on*`` event handler attributes,
``javascript:`` URLs, and forms (Gmail and Outlook disable them; a form that asks for data
in mail is the shape of phishing). They are refused rather than removed: the template is
Jinja as much as HTML, and a silent edit of it would surprise its author.

Warned about (in the save answer, the template is saved): images without ``alt`` (blank
when images are blocked, and the text part has nothing to show), links whose text shows a
URL other than the one they lead to (the mark of phishing), and known link shorteners
(shared by spammers: their domains are on block lists).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from mailer.errors import Invalid

_SCRIPT = re.compile(r"<\s*script\b", re.I)
_HANDLER = re.compile(r"<[^>]*?\s(on[a-z]+)\s*=", re.I | re.S)
_JS_URL = re.compile(r"""(?:href|src|action|formaction)\s*=\s*["']?\s*(?:java|vb)script:""", re.I)
_FORM = re.compile(r"<\s*(form|input|textarea|select|button)\b", re.I)

_TAG = re.compile(r"<(img|a)\b([^>]*)>", re.I | re.S)
_ATTR = re.compile(r"""([a-z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.I)
_LINK = re.compile(r"<a\b([^>]*)>(.*?)</a\s*>", re.I | re.S)
_URLISH = re.compile(r"^(?:https?://)?(?:www\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)+)(?:[/?#]\S*)?$", re.I)
SHORTENERS = frozenset(
    {
        "bit.ly", "tinyurl.com", "t.co", "goo.gl", "ow.ly", "is.gd", "buff.ly", "rebrand.ly",
        "cutt.ly", "shorturl.at", "tiny.cc", "rb.gy", "bl.ink", "t.ly", "s.id", "v.gd",
    }
)  # fmt: skip


def problems(html: str) -> list[str]:
    """What a template may not hold, each with the reason."""
    found: list[str] = []
    if _SCRIPT.search(html):
        found.append("<script>: mail clients never run scripts and spam filters count them")
    handler = _HANDLER.search(html)
    if handler:
        found.append(
            f"the {handler.group(1).lower()} attribute: event handlers never run in mail"
            " and spam filters count them"
        )
    if _JS_URL.search(html):
        found.append("a javascript: URL: mail clients refuse them; link to an https page")
    form = _FORM.search(html)
    if form:
        found.append(
            f"<{form.group(1).lower()}>: forms do not work in Gmail or Outlook and read as"
            " phishing; link to a page with the form instead"
        )
    return found


def refuse_unsafe(html: str, path: list[str | int]) -> None:
    """A 422 naming every unsafe construct of ``html`` (nothing when there is none)."""
    found = problems(html)
    if found:
        raise Invalid(
            f"html: refused (not removed): {'; '.join(found)}",
            [{"path": path, "message": message} for message in found],
        )


def _attrs(raw: str) -> dict[str, str]:
    return {
        m.group(1).lower(): next(g for g in m.groups()[1:] if g is not None)
        for m in _ATTR.finditer(raw)
    }


def _host(url: str) -> str:
    return (
        (urlsplit(url if "//" in url else f"//{url}").hostname or "").lower().removeprefix("www.")
    )


def warnings(html: str) -> list[str]:
    """What mailbox providers distrust in ``html`` (the template is still saved)."""
    out: list[str] = []
    images = [_attrs(m.group(2)) for m in _TAG.finditer(html) if m.group(1).lower() == "img"]
    missing = sum("alt" not in attrs for attrs in images)
    if missing:
        out.append(
            f"{missing} image(s) without alt text: blank where images are blocked, and"
            ' nothing for the text part (alt="" marks a decorative one)'
        )
    for match in _LINK.finditer(html):
        href = _attrs(match.group(1)).get("href", "").strip()
        if "{{" in href or not href:
            continue
        shown = re.sub(r"<[^>]+>", "", match.group(2)).strip()
        url = _URLISH.match(shown)
        if url and "{{" not in shown and _host(shown) != _host(href):
            out.append(
                f"the link text shows {shown[:60]!r} but leads to {_host(href) or href[:60]!r}:"
                " filters read that as phishing"
            )
        if _host(href) in SHORTENERS:
            out.append(
                f"{_host(href)} is a link shortener: spammers share them and their domains"
                " are on block lists; link to your own domain"
            )
    return list(dict.fromkeys(out))
