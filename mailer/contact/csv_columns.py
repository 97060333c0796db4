"""A contact CSV's header and what its cells must be: the columns and their types, the limits,
a valid address (apart from the streaming parser; the suppression list's reader uses them)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from functools import cached_property

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from mailer.contact.addresses import local_part_problem
from mailer.errors import Invalid

MAX_COLUMNS = 200
MAX_FIELD = 10_000  # characters in one field
MAX_HEADER_BYTES = 64 * 1024


# A plain dot-atom address with an LDH domain and an alphabetic TLD, already lower-cased.
# Every address this accepts, email-validator accepts too (tests/contact/test_imports.py
# checks this); anything else goes to email-validator itself, which is ~50x slower.
_PLAIN_ADDRESS = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
# IDNA rules apply to labels with "--" in the 3rd and 4th place (xn--…): those go to
# email-validator. Special-use domains are all top-level names it refuses (.local, .onion,
# …); .test is admitted as in valid_address (test_environment).
_SPECIAL_USE_TLDS = frozenset(d for d in SPECIAL_USE_DOMAIN_NAMES if "." not in d) - {"test"}
assert all("." not in d for d in SPECIAL_USE_DOMAIN_NAMES), "special-use names changed"


# The same test as one expression, so that a row costs one regex call: the local part at
# most 64 characters, no "--" in the domain, labels of at most 63, the TLD not special-use.
FAST_ADDRESS = re.compile(
    r"(?=[^@]{1,64}@)[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:(?=[a-z0-9-]{1,63}\.)[a-z0-9]+(?:-[a-z0-9]+)*\.)+"
    r"(?!(?:" + "|".join(sorted(map(re.escape, _SPECIAL_USE_TLDS))) + r")$)[a-z]{2,63}"
)


def fast_valid(address: str) -> bool:
    """True when ``address`` (normalised) is certainly valid; False means: ask the validator."""
    return len(address) <= 254 and FAST_ADDRESS.fullmatch(address) is not None


def _fast_valid_by_parts(address: str) -> bool:
    # the readable form of FAST_ADDRESS (tests check that both agree)
    return (
        len(address) <= 254
        and _PLAIN_ADDRESS.fullmatch(address) is not None
        and address.index("@") <= 64
        and "--" not in address[address.index("@") :]
        and address[address.rindex(".") + 1 :] not in _SPECIAL_USE_TLDS
    )


def address_problem(address: str) -> str | None:
    """None when the normalised ``address`` is valid, else the reason it is not."""
    if fast_valid(address):
        return None
    if (problem := local_part_problem(address)) is not None:
        return problem
    try:
        validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        return f"not a valid email address: {exc}"
    return None


# A header cell ``name:type`` gives an attribute column a type (``age:number``): its values
# are checked row by row and stored as JSON numbers, booleans or ISO dates, so a filter
# such as {"field": "attributes.age", "op": "gt", "value": 30} matches imported contacts as
# it matches those the API stored. A column without a type holds text, as before.
COLUMN_TYPES = ("string", "number", "boolean", "date")
_NUMBER = re.compile(r"[+-]?[0-9]{1,15}(?:\.[0-9]{1,15})?")
_BOOLEANS = {
    "true": "true",
    "false": "false",
    "yes": "true",
    "no": "false",
    "1": "true",
    "0": "false",
}


def split_type(column: str) -> tuple[str, str | None]:
    """``"age:number"`` -> ``("age", "number")``; a name without a known type, as it is."""
    name, colon, kind = column.rpartition(":")
    if colon and name.strip() and kind.strip().lower() in COLUMN_TYPES:
        return name.strip(), kind.strip().lower()
    return column, None


def typed_value(kind: str, cell: str) -> str | None:
    """The staged form of a non-empty cell of a typed column, or None when it is not one:
    a number as written (no exponent, at most 15 digits each side of the point), a boolean
    as true/false (from true/false/yes/no/1/0, any case), a date as YYYY-MM-DD."""
    if kind == "number":
        return cell.lstrip("+") if _NUMBER.fullmatch(cell) else None
    if kind == "boolean":
        return _BOOLEANS.get(cell.lower())
    if kind == "date":
        try:
            return date.fromisoformat(cell).isoformat() if len(cell) == 10 else None
        except ValueError:
            return None
    return cell


@dataclass(frozen=True)
class Header:
    """Where the email and tags columns are, and which columns become attributes."""

    width: int
    email: int
    tags: int | None
    status: int | None  # "subscribed" / "unsubscribed"; empty leaves the status alone
    # (the column as written, e.g. "age:number", and its index)
    attributes: tuple[tuple[str, int], ...]
    # topics to subscribe to and to leave, by name or id, ";" or "|" between them
    # (importer.TopicCells); an empty cell leaves the contact's topics alone
    topics: int | None = None
    topics_unsubscribed: int | None = None

    @cached_property
    def typed(self) -> tuple[tuple[int, str, str], ...]:
        """(position among the attributes, name, type) of the columns typed other than text."""
        out = []
        for at, (column, _) in enumerate(self.attributes):
            name, kind = split_type(column)
            if kind is not None and kind != "string":
                out.append((at, name, kind))
        return tuple(out)


# columns that are not attributes (any case)
SPECIAL_COLUMNS = ("email", "tags", "status", "topics", "topics_unsubscribed")


def parse_header(fields: list[str]) -> Header:
    names = [name.strip() for name in fields]
    if len(names) > MAX_COLUMNS:
        raise Invalid.at(["body", "header"], f"more than {MAX_COLUMNS} columns")
    seen: dict[str, int] = {}
    for i, column in enumerate(names):
        name = split_type(column)[0]
        if not name:
            raise Invalid.at(["body", "header", i], f"column {i + 1} of the header has no name")
        if name.lower() in seen:
            raise Invalid.at(["body", "header", i], f"column {name!r} appears twice")
        seen[name.lower()] = i
    if "email" not in seen:
        raise Invalid.at(["body", "header"], "the header row has no 'email' column")
    special = {seen.get(name, -1) for name in SPECIAL_COLUMNS}
    return Header(
        width=len(names),
        email=seen["email"],
        tags=seen.get("tags"),
        status=seen.get("status"),
        attributes=tuple((n, i) for i, n in enumerate(names) if i not in special),
        topics=seen.get("topics"),
        topics_unsubscribed=seen.get("topics_unsubscribed"),
    )


# A topics cell names topics by name or id, any of these between them (a name holding one
# is named by its id)
_TOPIC_SEPARATORS = re.compile(r"[;|]")


def topic_lookup(topics: Iterable[tuple[int, str]]) -> dict[str, int]:
    """What a topics cell may call each topic, (id, name) given: its name (any case) or
    its id; a name wins over another topic's id."""
    found = {str(topic_id): topic_id for topic_id, _ in topics}
    found.update((name.strip().lower(), topic_id) for topic_id, name in topics)
    return found


def topic_cells(
    topics: Mapping[str, int], subscribed: str, unsubscribed: str
) -> tuple[str | None, str | None]:
    """A row's ``topics`` and ``topics_unsubscribed`` cells (topic names or ids, ";" or "|"
    between them) as staged: a JSON object of topic id -> status (None when both are empty),
    or None and why the row is refused (an unknown topic, a topic in both)."""
    wanted: dict[str, str] = {}
    for column, cell, status in (
        ("topics", subscribed, "subscribed"),
        ("topics_unsubscribed", unsubscribed, "unsubscribed"),
    ):
        for item in _TOPIC_SEPARATORS.split(cell):
            name = item.strip()
            if not name:
                continue
            topic_id = topics.get(name.lower())
            if topic_id is None:
                return None, f"{column}: no topic {name[:80]!r} (name a topic by its name or id)"
            if wanted.get(str(topic_id), status) != status:
                return None, f"topic {name[:80]!r} is in both topics and topics_unsubscribed"
            wanted[str(topic_id)] = status
    return (json.dumps(wanted, sort_keys=True) if wanted else None), None
