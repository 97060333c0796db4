"""A campaign's links: UTM parameters added at send, never to the unsubscribe link.

The parameters go into the template's HTML source where a link is a literal absolute
``http(s)`` URL in an ``href``: a link built by the template (``{{ unsubscribe_url }}``,
``{{ data.url }}``) is left as it is, and so is any link to an unsubscribe page or one
that carries UTM parameters of its own. The rewritten source is compiled once per
campaign (``sending.service``'s plan), so a send pays nothing for it; the template's
versions stay as they were written. Links in layouts and partials are the sender's
frame, not the campaign's, and are left alone.
"""

from __future__ import annotations

import re
from urllib.parse import quote

UTM_KEYS = ("source", "medium", "campaign")
_HREF = re.compile(r"""(\bhref\s*=\s*)(["'])(https?://[^"'\s<>]*)\2""", re.IGNORECASE)


def _never(url: str) -> bool:
    lowered = url.lower()
    return "{" in url or "unsubscribe" in lowered or "utm_" in lowered


def tagged(url: str, utm: dict[str, str]) -> str:
    """``url`` with ``utm_<key>=<value>`` added (HTML-escaped ``&``), before any fragment."""
    if _never(url):
        return url
    pairs = [f"utm_{k}={quote(utm[k], safe='')}" for k in UTM_KEYS if utm.get(k)]
    if not pairs:
        return url
    base, hash_, fragment = url.partition("#")
    joiner = "&amp;" if "?" in base else "?"
    if base.endswith(("?", "&", "&amp;")):
        joiner = ""
    return base + joiner + "&amp;".join(pairs) + hash_ + fragment


def with_utm(html: str, utm: dict[str, str] | None) -> str:
    """The HTML source with the campaign's UTM parameters on its literal links."""
    if not utm:
        return html
    return _HREF.sub(lambda m: m.group(1) + m.group(2) + tagged(m.group(3), utm) + m.group(2), html)
