"""Layouts applied by the product itself (templates choose theirs with ``{% extends %}``)."""

from __future__ import annotations

import re

PLAIN = "layouts/plain.html"
# a whole document, or a template that chose its layout: left as it is
_DOCUMENT = re.compile(r"<!doctype\b|<html\b|\{%-?\s*extends\b", re.I)


def wrap_fragment(html: str) -> str:
    """Inline HTML of a message in ``layouts/plain.html`` (doctype, charset, viewport,
    ``<title>`` = subject, responsive images) unless it is a full document already. The
    fragment starts on the first line, so render errors keep the author's line numbers."""
    if _DOCUMENT.search(html):
        return html
    return f'{{% extends "{PLAIN}" %}}{{% block content %}}{html}{{% endblock %}}'
