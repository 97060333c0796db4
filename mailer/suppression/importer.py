"""Suppression lists as CSV files (``POST /v1/suppressions/imports``): which columns are
read and what an empty cell means.

The file is read by the contact importer's streaming parser (``mailer.contact.importer``:
the same row numbers, the same bad-row rules) with a header of its own:

- the address: a column named ``email`` (listmonk's exports), ``Email Address``
  (Mailchimp's), ``e-mail``, ``e-mail address`` or ``email_address``, in any case; exactly one;
- ``reason`` (optional): free text up to 500 characters; empty → ``imported``;
- ``scope`` (optional): ``all`` or ``marketing``; empty → ``marketing`` when the reason is
  ``complaint``, ``unsubscribed`` or ``unsubscribe`` (what the feedback loop does with a
  complaint: it stops marketing mail only), ``all`` otherwise (as ``PUT /v1/suppressions``).

Every other column (Mailchimp's ``First Name``, listmonk's ``status`` …) is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from mailer.contact.csv_columns import MAX_COLUMNS, Header
from mailer.contact.importer import SEPARATOR, Record
from mailer.errors import Invalid

EMAIL_COLUMNS = ("email", "email address", "e-mail", "e-mail address", "email_address")
OPTIONAL_COLUMNS = ("reason", "scope")
MAX_REASON = 500
DEFAULT_REASON = "imported"
MARKETING_REASONS = frozenset({"complaint", "unsubscribed", "unsubscribe"})


def parse_header(fields: list[str]) -> Header:
    """The address column and the optional ``reason`` and ``scope`` columns of a header
    row (as ``Header.attributes``, in that order); a 422 for a header without one address
    column."""
    names = [name.strip().lower() for name in fields]
    if len(names) > MAX_COLUMNS:
        raise Invalid.at(["body", "header"], f"more than {MAX_COLUMNS} columns")
    emails = [i for i, name in enumerate(names) if name in EMAIL_COLUMNS]
    if not emails:
        raise Invalid.at(
            ["body", "header"],
            "the header row has no address column: name it 'email' or 'Email Address'",
        )
    if len(emails) > 1:
        raise Invalid.at(
            ["body", "header", emails[1]],
            f"more than one address column: {', '.join(repr(fields[i].strip()) for i in emails)}",
        )
    for name in OPTIONAL_COLUMNS:
        if names.count(name) > 1:
            raise Invalid.at(["body", "header"], f"column {name!r} appears twice")
    return Header(
        width=len(names),
        email=emails[0],
        tags=None,
        status=None,
        attributes=tuple((n, names.index(n)) for n in OPTIONAL_COLUMNS if n in names),
    )


def record_reader(header: Header) -> Callable[[Record], tuple[str, str] | str]:
    """A function giving (reason, scope) of a parsed row, or why the row is rejected."""
    names = tuple(name for name, _ in header.attributes)
    return lambda record: _read_cells(names, record[2])


# files repeat a few reasons and scopes: each combination is read once
@lru_cache(maxsize=4096)
def _read_cells(names: tuple[str, ...], values: str) -> tuple[str, str] | str:
    cells = dict(zip(names, values.split(SEPARATOR)[1:], strict=True))
    reason = cells.get("reason", "") or DEFAULT_REASON
    if len(reason) > MAX_REASON:
        return f"the reason is over {MAX_REASON} characters"
    scope = cells.get("scope", "").lower()
    if not scope:
        scope = "marketing" if reason.lower() in MARKETING_REASONS else "all"
    elif scope not in ("all", "marketing"):
        return "scope must be all or marketing (or empty)"
    return reason, scope
