"""Contacts: created or updated by address, read with their suppression state; CSV imports."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import time
from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

import structlog
from arq import ArqRedis
from sqlalchemy import ColumnElement, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.audience import repository as audience_repository
from mailer.audience.filters import compile_filter
from mailer.audience.service import parse_cursor
from mailer.contact import importer, repository
from mailer.contact.addresses import valid_address
from mailer.contact.schemas import (
    ContactIn,
    ContactOut,
    ContactPage,
    ErasureOut,
    ImportAccepted,
    ImportOut,
    ImportRowError,
)
from mailer.db import after_commit, transaction
from mailer.errors import Invalid, NotFound
from mailer.models import Contact
from mailer.queues import IMPORT_QUEUE


async def put(session: AsyncSession, email: str, body: ContactIn) -> tuple[ContactOut, bool]:
    """Create or replace the contact at ``email``; True when it was created."""
    address = valid_address(email, ["path", "email"])
    _check_attributes(body.attributes, ["body", "attributes"])
    tags = sorted({t.strip() for t in body.tags if t.strip()})
    _, created = await repository.upsert(session, address, body.attributes, tags)
    if body.status is not None:
        await repository.record_status_change(session, [address], body.status, "api")
    return await get(session, address), created


def _check_attributes(value: Any, path: list[str | int]) -> None:
    # what jsonb cannot hold is a 422, not a 500
    if isinstance(value, str) and "\x00" in value:
        raise Invalid.at(path, "strings cannot contain NUL (\\u0000)")
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid.at(path, "numbers must be finite")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_attributes(item, [*path, i])
    if isinstance(value, dict):
        for key, item in value.items():
            _check_attributes(key, path)
            _check_attributes(item, [*path, key])


def _out(contact: Contact, suppressed: bool) -> ContactOut:
    return ContactOut(
        id=contact.id,
        email=contact.email,
        attributes=contact.attributes,
        tags=contact.tags,
        status=contact.status,
        suppressed=suppressed,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


async def get(session: AsyncSession, email: str) -> ContactOut:
    found = await repository.get(session, email.strip().lower())
    if found is None:
        raise NotFound(f"no contact {email.strip().lower()!r}")
    return _out(*found)


async def page(
    session: AsyncSession, tree: dict[str, Any] | None, cursor: str | None, limit: int
) -> ContactPage:
    """Contacts by id, ``limit`` at a time, optionally those a segment filter matches."""
    where: ColumnElement[bool] = true()
    if tree is not None:
        where = compile_filter(tree)
        await audience_repository.custom_plans(session)
    rows = await repository.page(session, where, parse_cursor(cursor), limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return ContactPage(
        items=[_out(c, s) for c, s in rows],
        next_cursor=str(rows[-1][0].id) if more and rows else None,
    )


def address_hmac(secret_key: str, address: str) -> str:
    return hmac.new(secret_key.encode(), address.encode(), hashlib.sha256).hexdigest()


async def erase(session: AsyncSession, email: str, secret_key: str) -> ErasureOut:
    """Erase the personal data of ``email`` (right to be forgotten); 404 if there is none.

    The suppression, if any, stays: it is what keeps the address from being mailed again.
    The erasure is recorded by an HMAC of the address, never the address itself.
    """
    address = email.strip().lower()
    existed, messages, events, suppressed = await repository.erase(
        session, address, address_hmac(secret_key, address)
    )
    if not existed and not messages and not events:
        raise NotFound(f"no contact {address!r}")
    return ErasureOut(email_erased=existed, messages=messages, events=events, suppressed=suppressed)


# --- CSV imports ---------------------------------------------------------------------------

log = structlog.get_logger(__name__)

IMPORT_CHUNK_ROWS = 200_000
_NOT_CSV_TYPES = ("multipart/", "application/json", "application/x-www-form-urlencoded")


async def enqueue_import(redis: ArqRedis, import_id: int) -> None:
    # one job id per import: enqueuing it again while it is queued or running is a no-op
    await redis.enqueue_job(
        "import_contacts", import_id, _job_id=f"import:{import_id}", _queue_name=IMPORT_QUEUE
    )


async def create_import(
    session: AsyncSession,
    redis: ArqRedis | None,
    body: AsyncIterable[bytes],
    content_type: str = "text/csv",
    tags: Iterable[str] = (),
    on_bytes: Callable[[int], None] | None = None,
) -> ImportAccepted:
    """Stream an uploaded CSV file into the staging table and queue its import.

    Nothing of the file is held whole: each stretch is parsed and its good rows COPYed as
    it arrives; bad rows are counted and reported. All of it is in the caller's
    transaction, so an unusable file (422) or an upload over the limit (413) stores nothing.
    The job is enqueued after commit (no ``redis``: the caller runs it, as the CLI does).
    """
    if content_type.lower().startswith(_NOT_CSV_TYPES):
        raise Invalid.at(
            ["header", "content-type"],
            f"send the CSV file itself as the body (text/csv), not {content_type}",
        )
    extra = frozenset(t.strip() for t in tags if t.strip())
    row = await repository.create_import(session)
    import_id = row.id
    upload = importer.Upload(extra_tags=extra)
    stage = await repository.stager(session, import_id)
    # one COPY in flight while the next stretch is parsed: PostgreSQL stores a stretch
    # while this process reads the following one
    copying: asyncio.Task[None] | None = None
    try:
        async for data in body:
            for records in upload.feed(data):
                if records:
                    if copying is not None:
                        await copying
                    copying = asyncio.create_task(stage(records))
            if on_bytes is not None:
                on_bytes(len(data))
        records = upload.close()
        if copying is not None:
            await copying
        copying = None
        if records:
            await stage(records)
    finally:
        if copying is not None:  # the upload failed (413, 422, a dropped connection)
            with contextlib.suppress(BaseException):
                await copying
    await repository.finish_upload(
        session,
        import_id,
        read=upload.read,
        rejected=upload.rejected,
        errors=upload.errors,
        keys=upload.keys,
    )
    if redis is not None:
        after_commit(session, lambda: enqueue_import(redis, import_id))
    return ImportAccepted(id=import_id, status="pending")


async def get_import(session: AsyncSession, import_id: int) -> ImportOut:
    row = await repository.get_import(session, import_id)
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


async def run_import(
    sessionmaker: async_sessionmaker[AsyncSession],
    import_id: int,
    chunk_rows: int = IMPORT_CHUNK_ROWS,
    on_chunk: Callable[[int], None] | None = None,
) -> str:
    """Merge the staged rows of an import into contacts, chunk by chunk; its final status.

    Each chunk (a range of rows) goes into contacts and is counted, with the row it
    reached (merged_through), in one transaction, so a re-run after a crash neither skips
    nor double-counts rows; the staged rows go when the import finishes. A re-run of a
    finished import does nothing; of two runs at once, one stops ("superseded").
    ``on_chunk(rows)`` reports progress (the CLI's bar).
    """
    async with transaction(sessionmaker) as session:
        state = await repository.lock_import(session, import_id)
        if state is None:
            return "missing"
        if state.status not in ("pending", "running"):
            return str(state.status)
        if state.status == "pending":
            started = time.perf_counter()
            await repository.start_import(session, import_id)
            log.info(
                "import_started",
                import_id=import_id,
                seconds=round(time.perf_counter() - started, 3),
            )
    done, keys = int(state.merged_through), list(state.attribute_keys)
    # checked once a run: whether an address left is a contact already ("fresh": none is),
    # and the repeats marked only when needed (a chunk that is not fresh, or a fresh one
    # that failed on a repeated address)
    fresh: bool | None = None
    marked = False
    while True:
        try:
            async with transaction(sessionmaker) as session:
                state = await repository.lock_import(session, import_id)
                if state is None or state.status != "running" or state.merged_through != done:
                    return "superseded"
                started = time.perf_counter()
                if fresh is None:
                    fresh = not await repository.meets_contacts(session, import_id, done)
                if not fresh and not marked:
                    await repository.mark_duplicates(session, import_id, importer.MAX_ERRORS)
                    marked = True
                chunk = await repository.merge_chunk(
                    session, import_id, keys, done, chunk_rows, fresh
                )
                log.info(
                    "import_chunk_merged",
                    import_id=import_id,
                    after=done,
                    rows=chunk.good,
                    fresh=fresh,
                    seconds=round(time.perf_counter() - started, 3),
                )
                if chunk.last_row is None:
                    return await _finish(session, import_id, state)
                await repository.record_chunk(
                    session,
                    import_id,
                    last_row=chunk.last_row,
                    created=chunk.created,
                    updated=chunk.good - chunk.created,
                )
        except IntegrityError as exc:
            if not (fresh and _email_taken(exc)):
                raise
            # a repeated address in the file (or a contact created meanwhile): mark the
            # repeats and look again; a second time, merge the rest as updates
            log.info("import_chunk_conflict", import_id=import_id, after=done, marked=marked)
            if not marked:
                async with transaction(sessionmaker) as session:
                    state = await repository.lock_import(session, import_id)
                    if state is None or state.status != "running" or state.merged_through != done:
                        return "superseded"
                    await repository.mark_duplicates(session, import_id, importer.MAX_ERRORS)
                marked, fresh = True, None
            else:
                fresh = False
            continue
        done = chunk.last_row
        if on_chunk is not None:
            on_chunk(chunk.good)


def _email_taken(exc: IntegrityError) -> bool:
    # the unique email of contacts (SQLSTATE 23505, unique_violation)
    return getattr(exc.orig, "sqlstate", None) == "23505" and "uq_contacts_email" in str(exc)


async def _finish(session: AsyncSession, import_id: int, state: Any) -> str:
    if state.accounted != state.total_rows:
        # an UNLOGGED staging table is emptied by a database crash
        await repository.finish_import(
            session,
            import_id,
            "failed",
            "the staged rows were lost (database restart): upload the file again",
        )
        return "failed"
    await repository.finish_import(session, import_id, "completed")
    return "completed"


async def fail_import(
    sessionmaker: async_sessionmaker[AsyncSession], import_id: int, reason: str
) -> None:
    async with transaction(sessionmaker) as session:
        state = await repository.lock_import(session, import_id)
        if state is not None and state.status in ("pending", "running"):
            await repository.finish_import(session, import_id, "failed", reason[:2000])
