"""Where a streamed CSV file's records end, found by reading its bytes once as the csv reader
would (apart from the checks of the rows, in ``importer``).

Where the boundaries are is known by reading the bytes once, in order, as the csv reader
reads them (a quote opens a quoted field only at the start of a field; ``""`` inside one
is a quote), the state kept between pieces: never a walk back over what was read. A quote
that is not closed cannot swallow the rest of the file: a quoted field still open
``_MAX_QUOTED_BYTES`` on (more than ``MAX_FIELD`` characters in any encoding, so its row
is refused whatever follows), or at the end of the file, is taken for a stray quote: the
row it opened in is rejected by number and reading goes on with the next line. A record
over ``_MAX_RECORD_BYTES`` is rejected and skipped to the end of its line.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

from mailer.contact.csv_columns import MAX_FIELD, MAX_HEADER_BYTES, Header
from mailer.errors import Invalid

if TYPE_CHECKING:
    from mailer.contact.importer import Record

# a quoted field this long is over MAX_FIELD characters however they are encoded (4 bytes
# a character at most, or "" for one): still open past it, its quote was a stray one
_MAX_QUOTED_BYTES = 4 * MAX_FIELD + 4
_MAX_RECORD_BYTES = 1 << 20  # a record still without its end here is rejected


class RecordScan:
    """Cuts the bytes fed to an upload at record boundaries, reading each byte once; the
    records between are handed to ``_parse``, a record it cannot end to ``_reject``."""

    # the upload's state that the scan reads and moves (fields of :class:`Upload`)
    header: Header | None
    read: int
    scanned: int
    _pending: bytes
    _line: int
    _scan: int
    _inside: bool
    _quote: int
    _cut: int
    _skipping: bool

    def _parse(self, chunk: bytes) -> list[Record]:
        raise NotImplementedError

    def _reject(self, row: int, email: str, reason: str) -> None:
        raise NotImplementedError

    def _take(self, data: bytes, final: bool) -> Iterator[list[Record]]:
        """Add ``data`` to what is pending and parse every complete record of it."""
        buf = self._pending + data if self._pending else data
        while True:
            if self._skipping:
                buf = self._skip(buf)
                if self._skipping:
                    break
            self._advance(buf, final)
            if self._inside and (final or self._scan - self._quote > _MAX_QUOTED_BYTES):
                # a stray quote: the records before its own parsed, its record rejected,
                # and the scan goes on at the next line
                if self._cut:
                    yield self._parse(buf[: self._cut])
                buf = self._stray_quote(buf, final)
                continue
            if final:
                if self._cut:
                    yield self._parse(buf[: self._cut])
                rest = buf[self._cut :]
                if rest.strip():
                    yield self._parse(rest)
                buf = b""
                break
            if len(buf) - self._cut > _MAX_RECORD_BYTES:
                if self._cut:
                    yield self._parse(buf[: self._cut])
                self.read += 1
                self._reject(self._line + 1, "", f"the row is over {_MAX_RECORD_BYTES} bytes")
                buf = buf[self._cut :]
                self._inside = False
                self._scan = self._cut = 0
                self._skipping = True
                continue
            if self._cut:
                yield self._parse(buf[: self._cut])
                buf = buf[self._cut :]
                self._scan -= self._cut
                self._quote -= self._cut
                self._cut = 0
            if self.header is None and len(buf) > MAX_HEADER_BYTES:
                raise Invalid.at(
                    ["body", "header"], f"the header row is over {MAX_HEADER_BYTES} bytes"
                )
            break
        self._pending = buf

    def _advance(self, buf: bytes, final: bool) -> None:
        """Read ``buf`` on from where the scan stopped, as the csv reader would, noting
        the last record boundary (just after a newline outside quotes)."""
        pos, inside, quote, cut = self._scan, self._inside, self._quote, self._cut
        end = len(buf)
        self.scanned += end - pos
        while pos < end:
            q = buf.find(b'"', pos)
            if inside:
                if q < 0 or q - quote > _MAX_QUOTED_BYTES:
                    pos = end if q < 0 else q
                    break
                if q + 1 == end and not final:
                    pos = q  # a closing quote or the first of "": the next byte says
                    break
                if q + 1 == end:  # the file's last byte closes the field
                    inside, pos = False, end
                    break
                if buf[q + 1] == 0x22:  # "" inside quotes
                    pos = q + 2
                    continue
                inside, pos = False, q + 1
                continue
            newline = buf.rfind(b"\n", pos, end if q < 0 else q)
            if newline >= 0:
                cut = newline + 1
            if q < 0:
                pos = end
                break
            if q == 0 or buf[q - 1] in _FIELD_ENDS:  # a quote at the start of a field
                inside, quote = True, q
            pos = q + 1
        self._scan, self._inside, self._quote, self._cut = pos, inside, quote, cut

    def _stray_quote(self, buf: bytes, final: bool) -> bytes:
        """Reject the record a stray quote opened in (from ``_cut``: the records before it
        are parsed) up to the end of the quote's line; what is left of ``buf``."""
        eol = buf.find(b"\n", self._quote)
        record = buf[self._cut : len(buf) if eol < 0 else eol + 1]
        row = self._line + 1
        if self.header is None:
            raise Invalid.at(["body", "header"], "the header row has a quote that is not closed")
        try:
            text = record.decode("utf-8", "replace")
            fields = next(csv.reader(io.StringIO(text, newline="")), [])
        except csv.Error:
            fields = []
        email = fields[self.header.email] if len(fields) > self.header.email else ""
        self.read += 1
        self._reject(row, email.strip(), "a quote opened in this row is not closed")
        self._line += _lines(record)
        self._inside = False
        self._scan = self._cut = 0
        if eol < 0:  # the line goes on past what has arrived: dropped up to its end
            self._skipping = not final
            return b""
        return buf[eol + 1 :]

    def _skip(self, buf: bytes) -> bytes:
        """Drop an over-long record's bytes up to the end of its line; what is left."""
        eol = buf.find(b"\n")
        if eol < 0:
            keep = 1 if buf.endswith(b"\r") else 0  # a CR that may be half of a CRLF
            self._line += _lines(buf[: len(buf) - keep])
            return buf[len(buf) - keep :]
        self._line += _lines(buf[: eol + 1])
        self._skipping = False
        return buf[eol + 1 :]


_FIELD_ENDS = b",\r\n"  # what comes before a field's first character


def _lines(data: bytes) -> int:
    """Physical lines in ``data`` as the csv reader counts them (LF, CRLF and a bare CR)."""
    return data.count(b"\n") + data.count(b"\r") - data.count(b"\r\n")
