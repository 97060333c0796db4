"""The suppression list (checked by every send) and unsubscribes from our own pages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Iterable, Sequence
from datetime import datetime

import orjson
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.contact import importer as csv_rows
from mailer.contact.addresses import normalise, valid_address
from mailer.contact.imports import _NOT_CSV_TYPES  # the contact import's rule, kept there
from mailer.errors import Invalid, NotFound
from mailer.models import Suppression
from mailer.pagination import Page
from mailer.suppression import importer, repository
from mailer.suppression.schemas import (
    ImportReport,
    ImportRowError,
    SuppressionIn,
    SuppressionOut,
    SuppressionPage,
)
from mailer.suppression.tokens import read_token


def _out(row: Suppression) -> SuppressionOut:
    return SuppressionOut(
        email=row.email,
        reason=row.reason,
        scope=row.scope,
        source=row.source,
        created_at=row.created_at,
    )


async def get(session: AsyncSession, email: str) -> SuppressionOut:
    row = await repository.get(session, normalise(email))
    if row is None:
        raise NotFound(f"{normalise(email)} is not suppressed")
    return _out(row)


async def put(
    session: AsyncSession, email: str, body: SuppressionIn
) -> tuple[SuppressionOut, bool]:
    address = valid_address(email, ["path", "email"])
    row, created = await repository.put(session, address, body.reason, body.scope)
    return _out(row), created


async def delete(session: AsyncSession, email: str) -> None:
    if not await repository.remove(session, normalise(email)):
        raise NotFound(f"{normalise(email)} is not suppressed")


async def page(
    session: AsyncSession,
    page: Page[str],
    reason: str | None,
    scope: str | None,
    source: str | None,
) -> SuppressionPage:
    rows, next_cursor = page.cut(
        await repository.page(session, page.last, page.fetch, reason, scope, source),
        key=lambda r: r.email,
    )
    return SuppressionPage(items=[_out(r) for r in rows], next_cursor=next_cursor)


def message_of(keys: Sequence[str], token: str) -> int:
    """The message id of a genuine token; anything else is a 404 that reveals nothing."""
    message_id = read_token(keys, token)
    if message_id is None:
        raise NotFound("unknown unsubscribe link")
    return message_id


async def check_link(session: AsyncSession, keys: Sequence[str], token: str) -> int:
    message_id = message_of(keys, token)
    if not await repository.message_exists(session, message_id):
        raise NotFound("unknown unsubscribe link")
    return message_id


async def unsubscribe(session: AsyncSession, keys: Sequence[str], token: str, how: str) -> bool:
    """Unsubscribe the recipient of the token's message at once; True the first time.

    Stops marketing mail only: the contact is unsubscribed and the address suppressed for
    marketing; recorded as an ``unsubscribe`` event and counted in the campaign once.
    """
    message_id = message_of(keys, token)
    data = orjson.dumps({"via": how}).decode()
    # a topic campaign's link leaves its topic only (mailer.models.subscription)
    found, new = await repository.unsubscribe_topic(session, message_id, how, data)
    if not found:
        found, new = await repository.unsubscribe(session, message_id, how, data)
    if not found:
        raise NotFound("unknown unsubscribe link")
    return new


# -- imports -------------------------------------------------------------------------------


async def import_csv(
    session: AsyncSession, body: AsyncIterable[bytes], content_type: str = "text/csv"
) -> ImportReport:
    """A suppression list from another tool, as a CSV file streamed in (columns:
    ``mailer.suppression.importer``), merged in the caller's transaction; the report counts
    the rows and lists the rejected ones by row number. Nothing of the file is held whole:
    each stretch's good rows are COPYed into a temporary table as it arrives, and one
    statement merges them at the end (a suppression is only ever widened)."""
    if content_type.lower().startswith(_NOT_CSV_TYPES):
        raise Invalid.at(
            ["header", "content-type"],
            f"send the CSV file itself as the body (text/csv), not {content_type}",
        )
    upload = csv_rows.Upload(header_of=importer.parse_header)
    stage = await repository.stager(session)
    refused: list[dict[str, object]] = []  # rows the parser took but the columns refuse
    refused_count = 0
    staged_rows = 0

    def rows(records: list[csv_rows.Record]) -> list[repository.ImportRow]:
        nonlocal refused_count, staged_rows
        assert upload.header is not None
        read_record = importer.record_reader(upload.header)
        out: list[repository.ImportRow] = []
        for record in records:
            read = read_record(record)
            if isinstance(read, str):
                refused_count += 1
                if len(refused) < csv_rows.MAX_ERRORS:
                    refused.append({"row": record[0], "email": record[1], "reason": read})
                continue
            out.append((record[0], record[1], read[0], read[1], None))
        staged_rows += len(out)
        return out

    # one COPY in flight while the next stretch is parsed, as the contact import does
    copying: asyncio.Task[None] | None = None
    try:
        async for data in body:
            for records in upload.feed(data):
                staged = rows(records)
                if staged:
                    if copying is not None:
                        await copying
                    copying = asyncio.create_task(stage(staged))
        last = rows(upload.close())
        if copying is not None:
            await copying
        copying = None
        if last:
            await stage(last)
    finally:
        if copying is not None:  # the upload failed (413, 422, a dropped connection)
            with contextlib.suppress(BaseException):
                await copying
    created, widened, unchanged, addresses = await repository.merge_import(session, "import")
    repeat_count, repeats = 0, list[tuple[int, str, int]]()
    if addresses < staged_rows:
        repeat_count, repeats = await repository.import_repeats(session, csv_rows.MAX_ERRORS)
    errors = [
        *upload.errors,
        *refused,
        *(
            {"row": row, "email": email, "reason": f"a repeat of row {first} (the first counts)"}
            for row, email, first in repeats
        ),
    ]
    errors.sort(key=lambda e: int(str(e["row"])))
    return ImportReport(
        total_rows=upload.read,
        created=created,
        updated=widened,
        unchanged=unchanged,
        rejected=upload.rejected + refused_count + repeat_count,
        errors=[ImportRowError.model_validate(e) for e in errors[: csv_rows.MAX_ERRORS]],
    )


# SES account-level suppression reasons: a bounce stops every class; a complaint stops
# marketing mail only, the rule of the feedback loop for a complaint
SES_SCOPES = {"BOUNCE": "all", "COMPLAINT": "marketing"}


async def import_ses_list(
    session: AsyncSession, listed: Iterable[tuple[str, str, datetime]]
) -> tuple[int, int, int]:
    """Entries of an SES account-level suppression list, (address, reason, last update),
    into ours (source ``ses``), their date kept: (created, widened, unchanged). BOUNCE →
    scope ``all``, COMPLAINT → ``marketing`` (an unknown reason: ``all``); the reason reads
    ``bounce (SES account suppression list)``. Only ever widens, as the feedback loop."""
    stage = await repository.stager(session)
    entries = [
        (SES_SCOPES.get(reason.upper(), "all"), normalise(address), reason.lower(), when)
        for address, reason, when in listed
    ]
    # an address listed in several regions: its widest scope counts (the first row does)
    entries.sort(key=lambda e: e[0] != "all")
    rows: list[repository.ImportRow] = [
        (n, address, f"{reason} (SES account suppression list)", scope, when)
        for n, (scope, address, reason, when) in enumerate(entries, 1)
    ]
    if rows:
        await stage(rows)
    created, widened, unchanged, _ = await repository.merge_import(session, "ses")
    return created, widened, unchanged
