"""CSV contact files: the header checked at upload, the rows read in chunks by the job.

Rows are read straight from the uploaded bytes (an incremental UTF-8 decoder under the
csv reader), so memory holds the upload and one chunk, never a list of every row.

Rows are numbered by the line of the file they start on (the header is line 1), the number
an editor or a spreadsheet shows. Blank lines are skipped and not counted. Within a file,
later rows win: a repeated address merges into the earlier one (attributes overwritten key
by key, tags united), exactly as if the rows were imported one after the other.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from mailer.errors import Invalid

MAX_ERRORS = 1000  # error entries kept per import; every reject is still counted
MAX_COLUMNS = 200
_MAX_HEADER = 64 * 1024
_MAX_REPORTED_EMAIL = 320

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


def fast_valid(address: str) -> bool:
    """True when ``address`` (normalised) is certainly valid; False means: ask the validator."""
    return (
        len(address) <= 254
        and _PLAIN_ADDRESS.fullmatch(address) is not None
        and address.index("@") <= 64
        and "--" not in address[address.index("@"):]
        and address[address.rindex(".") + 1:] not in _SPECIAL_USE_TLDS
    )


def address_problem(address: str) -> str | None:
    """None when the normalised ``address`` is valid, else the reason it is not."""
    if fast_valid(address):
        return None
    try:
        validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        return f"not a valid email address: {exc}"
    return None


@dataclass(frozen=True)
class Header:
    """Where the email and tags columns are, and which columns become attributes."""

    width: int
    email: int
    tags: int | None
    attributes: tuple[tuple[str, int], ...]


def _check_utf8(body: bytes) -> None:
    # slice by slice: a 200 MB upload must not become a second, larger copy as str
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(body)
    step = 1 << 20
    for start in range(0, len(body), step):
        try:
            decoder.decode(view[start:start + step], final=start + step >= len(body))
        except UnicodeDecodeError as exc:
            line = body[: start + exc.start].count(b"\n") + 1
            raise Invalid.at(["body"], f"the file is not UTF-8: bad byte at line {line}") from exc


def parse_header(fields: list[str]) -> Header:
    names = [name.strip() for name in fields]
    if len(names) > MAX_COLUMNS:
        raise Invalid.at(["body", "header"], f"more than {MAX_COLUMNS} columns")
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not name:
            raise Invalid.at(["body", "header", i], f"column {i + 1} of the header has no name")
        if name.lower() in seen:
            raise Invalid.at(["body", "header", i], f"column {name!r} appears twice")
        seen[name.lower()] = i
    if "email" not in seen:
        raise Invalid.at(["body", "header"], "the header row has no 'email' column")
    special = {seen["email"], seen.get("tags", -1)}
    return Header(
        width=len(names),
        email=seen["email"],
        tags=seen.get("tags"),
        attributes=tuple((n, i) for i, n in enumerate(names) if i not in special),
    )


def check_upload(body: bytes) -> Header:
    """The header of an upload, or a 422 saying why the body is not a usable CSV file."""
    if not body.strip():
        raise Invalid.at(["body"], "the file is empty: send a CSV file with a header row")
    if b"\x00" in body:
        raise Invalid.at(["body"], "not a CSV file: it contains NUL bytes")
    _check_utf8(body)  # the whole file: a bad byte anywhere is refused now, not later
    head = body[:_MAX_HEADER].decode("utf-8-sig", errors="ignore")
    if len(body) > _MAX_HEADER and "\n" not in head and "\r" not in head:
        raise Invalid.at(["body", "header"], f"the header row is over {_MAX_HEADER} bytes")
    try:
        first = next(csv.reader(io.StringIO(head, newline="")), None)
    except csv.Error as exc:
        raise Invalid.at(["body", "header"], f"the header row is not CSV: {exc}") from exc
    if not first:
        raise Invalid.at(["body", "header"], "the first line must be a header row")
    return parse_header(first)


def _lines(source: bytes) -> Iterator[str]:
    # TextIOWrapper decodes incrementally: no second full copy of the file as str
    return io.TextIOWrapper(io.BytesIO(source), encoding="utf-8-sig", newline="")


@dataclass
class Chunk:
    """Good rows of one stretch of the file, unique by address, plus what was rejected.

    A row's attributes are its values in the order of ``keys``, None for an empty cell
    (which leaves the contact's attribute as it is): no JSON is built in Python.
    """

    keys: list[str]
    rows: dict[str, tuple[list[str | None], set[str]]] = field(default_factory=dict)
    read: int = 0  # data rows read, good and bad
    merged: int = 0  # rows folded into an earlier row of this chunk (they count as updates)
    rejected: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)

    def reject(self, line: int, email: str, reason: str, room: int) -> None:
        self.rejected += 1
        if len(self.errors) < room:
            self.errors.append({"row": line, "email": email[:_MAX_REPORTED_EMAIL],
                                "reason": reason})

    def records(self) -> Iterator[tuple[str, list[str | None], list[str]]]:
        for email, (values, tags) in self.rows.items():
            yield email, values, sorted(tags)


def read_chunks(source: bytes, size: int, skip: int = 0, errors_room: int = MAX_ERRORS,
                breather: int = 1000) -> Iterator[Chunk | None]:
    """The data rows after the first ``skip`` ones, ``size`` at a time.

    Every ``breather`` rows it yields None: the caller's chance to let its event loop run
    (this parsing is CPU work that would otherwise hold the loop for a whole chunk).
    """
    reader = csv.reader(_lines(source))
    header = parse_header(next(reader))
    email_at, tags_at, width = header.email, header.tags, header.width
    keys = [name for name, _ in header.attributes]
    value_columns = [i for _, i in header.attributes]
    room = errors_room
    chunk = Chunk(keys)
    rows = chunk.rows
    last_line = reader.line_num
    count = 0
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            line, last_line = last_line + 1, reader.line_num
            count += 1
            if count > skip:
                chunk.read += 1
                chunk.reject(line, "", f"malformed CSV: {exc}", room)
            continue
        line, last_line = last_line + 1, reader.line_num
        raw = fields[email_at].strip() if len(fields) > email_at else ""
        if not raw and not any(f.strip() for f in fields):
            continue  # a blank line
        count += 1
        if count % breather == 0:
            yield None
        if count <= skip:
            continue
        chunk.read += 1
        if len(fields) != width:
            chunk.reject(line, raw, f"expected {width} fields, found {len(fields)}", room)
        elif not raw:
            chunk.reject(line, raw, "no email address", room)
        else:
            email = raw.lower()
            problem = None if fast_valid(email) else address_problem(email)
            if problem is not None:
                chunk.reject(line, raw, problem, room)
            else:
                values = [fields[i].strip() or None for i in value_columns]
                tags = set()
                if tags_at is not None and fields[tags_at]:
                    tags = set(map(str.strip, fields[tags_at].split(";")))
                    tags.discard("")
                earlier = rows.get(email)
                if earlier is None:
                    rows[email] = (values, tags)
                else:
                    earlier[0][:] = [
                        old if new is None else new for old, new in zip(earlier[0], values,
                                                                        strict=True)]
                    earlier[1].update(tags)
                    chunk.merged += 1
        if chunk.read >= size:
            room -= len(chunk.errors)
            yield chunk
            chunk = Chunk(keys)
            rows = chunk.rows
    if chunk.read:
        yield chunk
