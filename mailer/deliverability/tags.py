"""SES message tags: what SendEmail accepts, checked at the door.

SES v2 ``MessageTag``: a name and a value, each 1-256 of ASCII letters, digits, ``_`` and
``-`` (nothing else: a ``.`` or ``@`` in a value is a rejection by SES later, after the
202). A tag that SES would refuse is a 422 now, never a message queued to fail.
"""

from __future__ import annotations

import re

SES_TAG = re.compile(r"[A-Za-z0-9_-]{1,256}")
MAX_TAG_CHARS = 256
RULE = "1-256 of A-Z a-z 0-9 _ - (as SES allows)"


def tag_problem(name: str, value: str) -> str | None:
    """Why SES would refuse the tag ``name=value`` (None when it would not)."""
    if not SES_TAG.fullmatch(name):
        return f"tag {name!r}: the name must be {RULE}"
    if not SES_TAG.fullmatch(value):
        return f"tag {name!r}: the value {value[:40]!r} must be {RULE}"
    return None
