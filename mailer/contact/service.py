"""Contacts: created or updated by address, read with their suppression state; CSV imports."""

from __future__ import annotations

import asyncio
import contextlib

from arq import ArqRedis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.contact import importer, repository
from mailer.contact.addresses import valid_address
from mailer.contact.schemas import (
    ContactIn,
    ContactOut,
    ImportAccepted,
    ImportOut,
    ImportRowError,
)
from mailer.db import after_commit, transaction
from mailer.errors import Invalid, NotFound
from mailer.queues import IMPORT_QUEUE


async def put(session: AsyncSession, email: str, body: ContactIn) -> tuple[ContactOut, bool]:
    """Create or replace the contact at ``email``; True when it was created."""
    address = valid_address(email, ["path", "email"])
    tags = sorted({t.strip() for t in body.tags if t.strip()})
    _, created = await repository.upsert(session, address, body.attributes, tags)
    return await get(session, address), created


async def get(session: AsyncSession, email: str) -> ContactOut:
    found = await repository.get(session, email.strip().lower())
    if found is None:
        raise NotFound(f"no contact {email.strip().lower()!r}")
    contact, suppressed = found
    return ContactOut(
        id=contact.id, email=contact.email, attributes=contact.attributes, tags=contact.tags,
        status=contact.status, suppressed=suppressed, created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


# --- CSV imports ---------------------------------------------------------------------------

IMPORT_CHUNK_ROWS = 25_000
_NOT_CSV_TYPES = ("multipart/", "application/json", "application/x-www-form-urlencoded")


async def enqueue_import(redis: ArqRedis, import_id: int) -> None:
    # one job id per import: enqueuing it again while it is queued or running is a no-op
    await redis.enqueue_job("import_contacts", import_id, _job_id=f"import:{import_id}",
                            _queue_name=IMPORT_QUEUE)


async def create_import(session: AsyncSession, redis: ArqRedis, body: bytes,
                        content_type: str) -> ImportAccepted:
    """Store an uploaded CSV file and queue its import (after commit); 422 if unusable."""
    if content_type.lower().startswith(_NOT_CSV_TYPES):
        raise Invalid.at(["header", "content-type"],
                         f"send the CSV file itself as the body (text/csv), not {content_type}")
    importer.check_upload(body)
    row = await repository.create_import(session, body)
    import_id = row.id
    after_commit(session, lambda: enqueue_import(redis, import_id))
    return ImportAccepted(id=import_id, status=row.status or "pending")


async def get_import(session: AsyncSession, import_id: int) -> ImportOut:
    row = await repository.get_import(session, import_id)
    if row is None:
        raise NotFound(f"no import {import_id}")
    return ImportOut(
        id=row.id, status=row.status, total_rows=row.total_rows, created=row.created,
        updated=row.updated, rejected=row.rejected,
        errors=[ImportRowError(**e) for e in row.errors], failure=row.failure,
        created_at=row.created_at, finished_at=row.finished_at,
    )


class _Superseded(Exception):
    """Another run of the same import got further: this one stops."""


async def run_import(sessionmaker: async_sessionmaker[AsyncSession], import_id: int,
                     chunk_rows: int = IMPORT_CHUNK_ROWS) -> str:
    """Import the stored CSV chunk by chunk; resumes after the last committed chunk.

    Each chunk's upsert and its counters commit together, so a re-run after a crash
    neither skips nor double-counts rows; a re-run of a finished import does nothing.
    """
    async with transaction(sessionmaker) as session:
        state = await repository.lock_import(session, import_id)
        if state is None:
            return "missing"
        status, done, kept = state
        if status not in ("pending", "running"):
            return status
        if status == "pending":
            await repository.start_import(session, import_id)
        source = await repository.import_source(session, import_id)
    if source is None:
        await fail_import(sessionmaker, import_id, "the uploaded file is gone")
        return "failed"
    chunks = importer.read_chunks(source, chunk_rows, skip=done,
                                  errors_room=importer.MAX_ERRORS - kept)
    writing: asyncio.Task[int] | None = None
    try:
        for chunk in chunks:
            if chunk is None:
                # parsing is CPU work in this thread (a thread of its own was slower: the
                # GIL); the pause lets the loop run other jobs and the previous chunk's
                # write, so PostgreSQL merges chunk n while chunk n + 1 is being read
                await asyncio.sleep(0)
                continue
            if writing is not None:
                done = await writing
            writing = asyncio.create_task(_write_chunk(sessionmaker, import_id, chunk, done))
        if writing is not None:
            done = await writing
            writing = None
    except _Superseded:
        return "superseded"
    except Invalid as exc:  # the upload check makes this unlikely; retrying would not help
        await fail_import(sessionmaker, import_id, exc.message)
        return "failed"
    finally:
        if writing is not None:
            writing.cancel()
            with contextlib.suppress(BaseException):
                await writing
    async with transaction(sessionmaker) as session:
        state = await repository.lock_import(session, import_id)
        if state is None or state[0] != "running" or state[1] != done:
            return "superseded"
        await repository.finish_import(session, import_id, "completed")
    return "completed"


async def _write_chunk(sessionmaker: async_sessionmaker[AsyncSession], import_id: int,
                       chunk: importer.Chunk, done: int) -> int:
    async with transaction(sessionmaker) as session:
        state = await repository.lock_import(session, import_id)
        if state is None or state[0] != "running" or state[1] != done:
            raise _Superseded
        created = 0
        if chunk.rows:
            created = await repository.merge_contacts(session, chunk.keys, chunk.records())
        await repository.record_chunk(
            session, import_id, read=chunk.read, created=created,
            updated=len(chunk.rows) - created + chunk.merged, rejected=chunk.rejected,
            errors=chunk.errors)
    return done + chunk.read


async def fail_import(sessionmaker: async_sessionmaker[AsyncSession], import_id: int,
                      reason: str) -> None:
    async with transaction(sessionmaker) as session:
        state = await repository.lock_import(session, import_id)
        if state is not None and state[0] in ("pending", "running"):
            await repository.finish_import(session, import_id, "failed", reason[:2000])
