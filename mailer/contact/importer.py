"""CSV contact files, parsed as they stream in: the header checked, each row good or bad.

The upload is never held whole: bytes are cut at record boundaries (a newline outside
quotes), each stretch decoded and parsed on its own, and its good rows handed out as
records for COPY into the staging table. Memory holds one stretch, never the file.

Rows are numbered by the line of the file they start on (the header is line 1), the number
an editor or a spreadsheet shows. Blank lines are skipped and not counted. A bad row — an
invalid or empty address, a wrong number of fields, bytes that are not UTF-8, a field over
MAX_FIELD characters, malformed quoting — is reported with its row and reason and skipped.
A repeated address is found by the import job in SQL (the first row wins, the repeats are
reported): remembering every address here would cost the memory streaming saves.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from operator import itemgetter

from mailer.contact.addresses import normalise
from mailer.contact.csv_columns import (
    FAST_ADDRESS,
    MAX_FIELD,
    MAX_HEADER_BYTES,
    Header,
    address_problem,
    parse_header,
    topic_cells,
    typed_value,
)
from mailer.contact.csv_scan import RecordScan
from mailer.errors import Invalid

MAX_ERRORS = 1000  # error entries kept per import; every reject is still counted
_SLICE = 64 * 1024  # bytes parsed at a time, however large the chunks that arrive
_TAG_CELLS = 4096  # distinct tags cells remembered (files repeat a few)
_TAG_CELL_CHARS = 200  # and only short ones
# the white space str.strip removes (\s is the same set): ASCII, then any
_ASCII_SPACE = tuple(c for c in map(chr, range(128)) if c.isspace() and c not in "\r\n")
_EDGE_SPACE = re.compile(r"(?:^|,)[^\S\r\n]|[^\S\r\n](?:,|$)", re.MULTILINE)


# (row, email, attribute values in the order of Header.attributes, each after a U+001F —
# an empty one leaves the attribute alone —, tags joined by ";", status or None, topics as
# a JSON object of topic id -> "subscribed" / "unsubscribed" or None)
Record = tuple[int, str, str, str, str | None, str | None]
STATUSES = {"": None, "subscribed": "subscribed", "unsubscribed": "unsubscribed"}
SEPARATOR = "\x1f"


def _printable(raw: str) -> str:
    # a reported value must be valid text (undecodable bytes show as U+FFFD)
    text = raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("\x00", "")[:_MAX_REPORTED]


_MAX_REPORTED = 320


@dataclass
class Upload(RecordScan):
    """An upload parsed incrementally: ``feed`` bytes as they arrive, then ``close``.

    Both give the good rows of the stretch parsed so far; ``read``, ``rejected`` and
    ``errors`` (the first ``max_errors``) count and describe the rows seen.
    """

    max_errors: int = MAX_ERRORS
    fast: bool = True  # plain stretches skip the csv reader (False: always use it; tests)
    extra_tags: frozenset[str] = frozenset()  # added to every row (``mailer import --tag``)
    # how the header row is read (a suppression list reads its own columns)
    header_of: Callable[[list[str]], Header] = parse_header
    header: Header | None = None
    # the topics a topics column may name: csv_columns.topic_lookup of every topic
    topics: Mapping[str, int] = field(default_factory=dict)
    read: int = 0  # data rows, good and bad
    rejected: int = 0
    errors: list[dict[str, object]] = field(default_factory=list)
    scanned: int = 0  # bytes the record-boundary scan has looked at (each byte once)
    _pending: bytes = b""  # bytes not parsed yet, from the start of a record
    _line: int = 0  # physical lines parsed so far
    _tag_cells: dict[str, str] = field(default_factory=dict)  # tags cell -> staged tags
    # (topics cell, topics_unsubscribed cell) -> staged topics, or why the row is rejected
    _topic_cells: dict[tuple[str, str], tuple[str | None, str | None]] = field(default_factory=dict)
    # the boundary scan's state, as offsets in _pending: how far it has read, whether that
    # is inside a quoted field (and where its quote is), the last record boundary found
    _scan: int = 0
    _inside: bool = False
    _quote: int = 0
    _cut: int = 0
    _skipping: bool = False  # dropping an over-long record up to the end of its line

    def __post_init__(self) -> None:
        self._extra = ";".join(sorted(self.extra_tags))

    @property
    def keys(self) -> list[str]:
        return [] if self.header is None else [name for name, _ in self.header.attributes]

    @property
    def with_topics(self) -> bool:
        """Whether the file has a topics or topics_unsubscribed column."""
        header = self.header
        return header is not None and (
            header.topics is not None or header.topics_unsubscribed is not None
        )

    def feed(self, data: bytes) -> Iterator[list[Record]]:
        for start in range(0, len(data), _SLICE):
            yield from self._take(data[start : start + _SLICE], final=False)

    def feed_all(self, data: bytes) -> list[Record]:
        """The good rows of ``data`` parsed so far, in one list (what a thread hands back)."""
        return [record for records in self.feed(data) for record in records]

    def close(self) -> list[Record]:
        records = [r for batch in self._take(b"", final=True) for r in batch]
        if self.header is None:
            raise Invalid.at(["body"], "the file is empty: send a CSV file with a header row")
        return records

    def _reject(self, row: int, email: str, reason: str) -> None:
        self.rejected += 1
        if len(self.errors) < self.max_errors:
            self.errors.append({"row": row, "email": _printable(email), "reason": reason})

    def _parse(self, chunk: bytes) -> list[Record]:
        try:
            text = chunk.decode("utf-8")
            undecodable = False
        except UnicodeDecodeError:
            text = chunk.decode("utf-8", "surrogateescape")
            undecodable = True
        if self.header is None:
            text = text.removeprefix("\ufeff")
            if not text.strip():
                return []  # nothing but blank space so far
        has_nul = "\x00" in text  # PostgreSQL text cannot hold it
        has_separator = SEPARATOR in text
        if (
            self.fast
            and self.header is not None
            and not undecodable
            and not has_nul
            and not has_separator
            and '"' not in text
            and text.count("\r") == text.count("\r\n")
        ):
            return self._parse_plain(text)
        reader = csv.reader(io.StringIO(text, newline=""))
        if self.header is None:
            self._read_header(reader, undecodable, has_nul)
        records: list[Record] = []
        base = self._line
        last = reader.line_num
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row, last = base + last + 1, reader.line_num
                self.read += 1
                self._reject(row, "", f"malformed CSV: {exc}")
                continue
            row, last = base + last + 1, reader.line_num
            rejected = self.rejected
            self._row(row, fields, records, undecodable, has_nul, has_separator)
            if self.rejected > rejected and base + last > row and self.errors[-1]["row"] == row:
                # the rows a stray quote joined to this one are in it: say which
                self.errors[-1]["reason"] = (
                    f"{self.errors[-1]['reason']} (a quoted field runs from line {row} to"
                    f" line {base + last})"
                )
        self._line = base + reader.line_num
        return records

    def _row(
        self,
        row: int,
        fields: list[str],
        records: list[Record],
        undecodable: bool = False,
        has_nul: bool = False,
        has_separator: bool = False,
    ) -> None:
        """Check one row (its fields as the csv reader gives them): its record appended to
        ``records``, or the row rejected; a blank line is neither. The flags say what its
        stretch holds (bytes that are not UTF-8, NUL, U+001F) and the row is checked for."""
        header = self.header
        assert header is not None
        raw = fields[header.email].strip() if len(fields) > header.email else ""
        if not raw and not any(f.strip() for f in fields):
            return  # a blank line
        self.read += 1
        if len(fields) != header.width:
            self._reject(row, raw, f"expected {header.width} fields, found {len(fields)}")
            return
        if undecodable and not _is_text(fields):
            self._reject(row, raw, "the row is not UTF-8 text")
            return
        if has_nul and any("\x00" in f for f in fields):
            self._reject(row, raw, "the row contains a NUL byte")
            return
        if has_separator and any(SEPARATOR in f for f in fields):
            self._reject(row, raw, "the row contains the control character U+001F")
            return
        longest = max(map(len, fields))
        if longest > MAX_FIELD:
            at = next(i for i, f in enumerate(fields) if len(f) == longest)
            self._reject(row, raw, f"field {at + 1} is over {MAX_FIELD} characters")
            return
        if not raw:
            self._reject(row, raw, "no email address")
            return
        email = normalise(raw)
        problem = address_problem(email)
        if problem is not None:
            self._reject(row, raw, problem)
            return
        status = None
        if header.status is not None:
            cell = fields[header.status].strip().lower()
            if cell not in STATUSES:
                self._reject(row, raw, "status must be subscribed or unsubscribed (or empty)")
                return
            status = STATUSES[cell]
        cells = [fields[i].strip() for _, i in header.attributes]
        for at, name, kind in header.typed:
            if cells[at]:
                value = typed_value(kind, cells[at])
                if value is None:
                    self._reject(row, raw, f"{name}: {cells[at][:40]!r} is not a {kind}")
                    return
                cells[at] = value
        topics = None
        if self.with_topics:
            topics, problem = self._topics(fields, header)
            if problem is not None:
                self._reject(row, raw, problem)
                return
        values = "".join([SEPARATOR + cell for cell in cells])
        tags = self._tags(fields[header.tags]) if header.tags is not None else self._extra
        records.append((row, email, values, tags, status, topics))

    def _topics(self, fields: list[str], header: Header) -> tuple[str | None, str | None]:
        """The row's topics cells as staged (None: both empty), or why they are refused."""
        cells = (
            fields[header.topics] if header.topics is not None else "",
            fields[header.topics_unsubscribed] if header.topics_unsubscribed is not None else "",
        )
        known = self._topic_cells.get(cells)
        if known is None:
            known = topic_cells(self.topics, *cells)
            if sum(map(len, cells)) <= _TAG_CELL_CHARS:  # as for tags: the memory stays small
                if len(self._topic_cells) >= _TAG_CELLS:
                    self._topic_cells.clear()
                self._topic_cells[cells] = known
        return known

    def _tags(self, cell: str) -> str:
        """A tags cell as staged: the tags (and the extra ones) sorted, ";"-joined."""
        known = self._tag_cells.get(cell)
        if known is not None:
            return known
        if not cell:
            tags = self._extra
        elif ";" in cell or self.extra_tags:
            tags = ";".join(sorted(({t.strip() for t in cell.split(";")} - {""}) | self.extra_tags))
        else:
            tags = cell.strip()
        if len(cell) <= _TAG_CELL_CHARS:  # the memory stays small whatever the file
            if len(self._tag_cells) >= _TAG_CELLS:
                self._tag_cells.clear()
            self._tag_cells[cell] = tags
        return tags

    def _parse_plain(self, text: str) -> list[Record]:
        """A stretch without quotes, odd bytes or bare CRs: a line is a record and its
        fields are what lies between commas, as the csv reader would find, only faster.

        The common row (the right number of fields, none too long, a plain address, no
        status column) is taken here; any other goes through ``_row``."""
        header = self.header
        assert header is not None
        if "\r" in text:
            text = text.replace("\r\n", "\n")  # every CR is in a CRLF (checked by _parse)
        lines = text.split("\n")
        if lines[-1] == "":
            lines.pop()  # the stretch ends with a newline
        first = self._line + 1
        self._line += len(lines)
        records: list[Record] = []
        if header.status is not None or header.typed or self.with_topics:
            for row, line in enumerate(lines, first):
                self._row(row, line.split(","), records)
            return records
        # no field of the stretch starts or ends with white space: nothing to strip
        clean = _no_edge_space(text)
        email_at, width, tags_at = header.email, header.width, header.tags
        columns = [i for _, i in header.attributes]
        one = columns[0] if len(columns) == 1 else None
        several = itemgetter(*columns) if len(columns) > 1 else None
        tag_cells, extra, fast = self._tag_cells, self._extra, FAST_ADDRESS.fullmatch
        append, taken = records.append, 0
        for row, line in enumerate(lines, first):
            fields = line.split(",")
            if len(fields) != width or len(line) > MAX_FIELD:
                self._row(row, fields, records)
                continue
            email = fields[email_at]
            if not clean:
                email = email.strip()
            email = email.lower()
            if len(email) > 254 or fast(email) is None:
                self._row(row, fields, records)
                continue
            if several is not None:
                values = several(fields)
                if not clean:
                    values = [v.strip() for v in values]
                values = SEPARATOR + SEPARATOR.join(values)
            elif one is not None:
                values = SEPARATOR + (fields[one] if clean else fields[one].strip())
            else:
                values = ""
            if tags_at is None:
                tags = extra
            else:
                tags = tag_cells.get(fields[tags_at]) or self._tags(fields[tags_at])
            append((row, email, values, tags, None, None))
            taken += 1
        self.read += taken
        return records

    def _read_header(self, reader: Iterator[list[str]], undecodable: bool, has_nul: bool) -> None:
        try:
            first = next(reader, None)
        except csv.Error as exc:
            raise Invalid.at(["body", "header"], f"the header row is not CSV: {exc}") from exc
        if not first or not any(f.strip() for f in first):
            raise Invalid.at(["body", "header"], "the first line must be a header row")
        if sum(len(f) for f in first) > MAX_HEADER_BYTES:
            raise Invalid.at(["body", "header"], f"the header row is over {MAX_HEADER_BYTES} bytes")
        if undecodable and not _is_text(first):
            raise Invalid.at(["body", "header"], "the header row is not UTF-8 text")
        if has_nul and any("\x00" in f for f in first):
            raise Invalid.at(["body", "header"], "not a CSV file: the header has NUL bytes")
        self.header = self.header_of(first)


def _no_edge_space(text: str) -> bool:
    """True when no field of a plain stretch (CRLFs made LFs) starts or ends with white
    space. Plain substring searches where the text is ASCII (a regex scan costs ~50 ns a
    character), the regex only for a non-ASCII stretch."""
    if not text.isascii():
        return _EDGE_SPACE.search(text) is None
    for space in _ASCII_SPACE:
        if space in text and (
            "," + space in text
            or space + "," in text
            or "\n" + space in text
            or space + "\n" in text
            or text.startswith(space)
            or text.endswith(space)
        ):
            return False
    return True


def _is_text(fields: list[str]) -> bool:
    try:
        for f in fields:
            f.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
