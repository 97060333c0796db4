"""CSV imports as the API takes them: the upload spooled, parsed into the staging table, its
job queued, its report read (apart from the job that merges the rows, in ``import_merge``)."""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession

from mailer import queues
from mailer.contact import csv_columns, import_staging, importer
from mailer.contact.schemas import ImportAccepted, ImportOut, ImportRowError
from mailer.db import after_commit
from mailer.errors import Invalid, NotFound
from mailer.queues import IMPORT_QUEUE

SPOOL_PIECE = 64 * 1024  # bytes of a spooled upload parsed at a time (in a thread)
_NOT_CSV_TYPES = ("multipart/", "application/json", "application/x-www-form-urlencoded")


async def enqueue_import(redis: ArqRedis, import_id: int) -> None:
    # one job id per import: enqueuing it again while it is queued or running is a no-op
    await queues.enqueue(
        redis, IMPORT_QUEUE, "import_contacts", import_id, job_id=f"import:{import_id}"
    )


def check_import_type(content_type: str) -> None:
    """422 for a body that is plainly not the CSV file itself (a form, JSON)."""
    if content_type.lower().startswith(_NOT_CSV_TYPES):
        raise Invalid.at(
            ["header", "content-type"],
            f"send the CSV file itself as the body (text/csv), not {content_type[:100]}",
        )


@contextlib.asynccontextmanager
async def spooled(body: AsyncIterable[bytes]) -> AsyncIterator[AsyncIterator[bytes]]:
    """The upload written to a temporary file as it arrives, then read back from it: an
    upload, however slow, holds a file, never a database connection or a transaction.
    (The body's limit is the caller's: the app's ``BodyGate`` holds it to the import's.)"""
    with tempfile.TemporaryFile(prefix="mailer-import-") as file:
        async for data in body:
            file.write(data)  # into the page cache: microseconds, no need for a thread
        file.seek(0)

        async def pieces() -> AsyncIterator[bytes]:
            while piece := file.read(SPOOL_PIECE):
                yield piece

        yield pieces()


async def create_import(
    session: AsyncSession,
    redis: ArqRedis | None,
    body: AsyncIterable[bytes],
    content_type: str = "text/csv",
    tags: Iterable[str] = (),
    on_bytes: Callable[[int], None] | None = None,
) -> ImportAccepted:
    """Parse a CSV file into the staging table and queue its import.

    Nothing of the file is held whole: each piece is parsed in a thread (the event loop
    keeps serving other requests) and its good rows COPYed while the next one is parsed;
    bad rows are counted and reported. All of it is in the caller's transaction, so an
    unusable file (422) stores nothing. The API hands in a spooled upload (``spooled``),
    the CLI its file. The job is enqueued after commit (no ``redis``: the caller runs it,
    as the CLI does).
    """
    check_import_type(content_type)
    extra = frozenset(t.strip() for t in tags if t.strip())
    row = await import_staging.create_import(session)
    import_id = row.id
    topics = csv_columns.topic_lookup(await import_staging.topic_names(session))
    upload = importer.Upload(extra_tags=extra, topics=topics)
    stage = await import_staging.stager(session, import_id)
    # one COPY in flight while the next piece is parsed: PostgreSQL stores a piece while
    # a thread of this process parses the following one
    copying: asyncio.Task[None] | None = None
    try:
        async for data in body:
            records = await asyncio.to_thread(upload.feed_all, data)
            if records:
                if copying is not None:
                    await copying
                copying = asyncio.create_task(stage(records))
            if on_bytes is not None:
                on_bytes(len(data))
        records = await asyncio.to_thread(upload.close)
        if copying is not None:
            await copying
        copying = None
        if records:
            await stage(records)
    finally:
        if copying is not None:  # the upload failed (422, a dropped connection)
            with contextlib.suppress(BaseException):
                await copying
    await import_staging.finish_upload(
        session,
        import_id,
        read=upload.read,
        rejected=upload.rejected,
        errors=upload.errors,
        keys=upload.keys,
        with_topics=upload.with_topics,
    )
    if redis is not None:
        after_commit(session, lambda: enqueue_import(redis, import_id))
    return ImportAccepted(id=import_id, status="pending")


async def get_import(session: AsyncSession, import_id: int) -> ImportOut:
    row = await import_staging.get_import(session, import_id)
    if row is None:
        raise NotFound(f"no import {import_id}")
    return ImportOut(
        id=row.id,
        status=row.status,
        total_rows=row.total_rows,
        created=row.created,
        updated=row.updated,
        rejected=row.rejected,
        errors=sorted((ImportRowError(**e) for e in row.errors), key=lambda e: e.row),
        failure=row.failure,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )
