"""Cursor pages for every list route: one cursor parser, one ``limit`` rule, one page cut.

A list route takes the page as a dependency and hands it to its service::

    @router.get("/things", response_model=ThingPage)
    async def list_things(session: Session, page: IdPage) -> ThingPage:
        return await service.page(session, page)

and the service fetches ``page.fetch`` rows (one more than the page) after ``page.last``,
then ``rows, next_cursor = page.cut(rows, key=lambda t: t.id)``.

Cursors are what the previous page's ``next_cursor`` said: the decimal id of its last row
(``IdPage``) or, for lists keyed by text, that text base64url-encoded (``KeyPage``).
Anything else is a 422 naming ``cursor``, before any query runs: ``"²".isdigit()`` and
``"١".isdigit()`` are true in Python, and an id past bigint overflows asyncpg.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query

from mailer.errors import Invalid
from mailer.types import MAX_ID

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_KEY_CURSOR = 700  # base64url of a key of up to 525 bytes (an address is at most 320)

ID_CURSOR_PATTERN = r"^[0-9]{1,19}$"
KEY_CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"

K = TypeVar("K")
T = TypeVar("T")


def bad_cursor() -> Invalid:
    return Invalid.at(["query", "cursor"], "not a cursor from a previous page")


def parse_id_cursor(raw: str) -> int:
    """The id an ``IdPage`` cursor names: ASCII digits, within bigint."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 19 or int(raw) > MAX_ID:
        raise bad_cursor()
    return int(raw)


def id_cursor(last: int) -> str:
    return str(last)


def parse_key_cursor(raw: str) -> str:
    """The text a ``KeyPage`` cursor names: base64url (unpadded) of UTF-8 without NUL
    (PostgreSQL text holds no NUL)."""
    if not raw or len(raw) > MAX_KEY_CURSOR:
        raise bad_cursor()
    try:
        padded = raw + "=" * (-len(raw) % 4)
        key = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise bad_cursor() from exc
    if not key or "\x00" in key:
        raise bad_cursor()
    return key


def key_cursor(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode()).decode().rstrip("=")


@dataclass(frozen=True)
class Page(Generic[K]):
    """One page request: ``last`` is the key of the previous page's last row (None on the
    first page); the service reads the rows that come after it in the list's order."""

    last: K | None
    limit: int
    encode: Callable[[K], str]

    @property
    def fetch(self) -> int:
        """Rows to read: one more than the page tells whether another page follows."""
        return self.limit + 1

    def cut(self, rows: Sequence[T], key: Callable[[T], K]) -> tuple[list[T], str | None]:
        """The page's rows out of ``fetch`` rows read, and the cursor of the next page."""
        kept = list(rows[: self.limit])
        if len(rows) > self.limit and kept:
            return kept, self.encode(key(kept[-1]))
        return kept, None


Limit = Annotated[
    int, Query(ge=1, le=MAX_LIMIT, description=f"items per page, at most {MAX_LIMIT}")
]


def id_page(
    cursor: Annotated[
        str | None,
        Query(
            description="the `next_cursor` of the previous page",
            json_schema_extra={"pattern": ID_CURSOR_PATTERN},
        ),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[int]:
    return Page(None if cursor is None else parse_id_cursor(cursor), limit, id_cursor)


def key_page(
    cursor: Annotated[
        str | None,
        Query(
            description="the `next_cursor` of the previous page",
            json_schema_extra={"pattern": KEY_CURSOR_PATTERN, "maxLength": MAX_KEY_CURSOR},
        ),
    ] = None,
    limit: Limit = DEFAULT_LIMIT,
) -> Page[str]:
    return Page(None if cursor is None else parse_key_cursor(cursor), limit, key_cursor)


# the dependencies of the list routes: a page of a list ordered by id, or by a text key
IdPage = Annotated[Page[int], Depends(id_page)]
KeyPage = Annotated[Page[str], Depends(key_page)]
