"""Contacts: created or updated by address, read with their suppression state; CSV imports."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import math
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from arq import ArqRedis
from sqlalchemy import ColumnElement, true
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.audience import repository as audience_repository
from mailer.audience.filters import compile_filter
from mailer.contact import importer, repository
from mailer.contact.addresses import normalise, valid_address
from mailer.contact.schemas import (
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    ErasureOut,
    ImportAccepted,
    ImportOut,
    ImportRowError,
)
from mailer.db import after_commit, transaction
from mailer.errors import Invalid, NotFound
from mailer.models import Contact
from mailer.pagination import Page
from mailer.queues import IMPORT_QUEUE


async def put(session: AsyncSession, email: str, body: ContactIn) -> tuple[ContactOut, bool]:
    """Create the contact at ``email`` or replace its attributes and tags (a full
    replacement: what the body leaves out is gone); True when it was created."""
    address = valid_address(email, ["path", "email"])
    _check_attributes(body.attributes, ["body", "attributes"])
    _, created = await repository.upsert(session, address, body.attributes, _tags(body.tags))
    if body.status is not None:
        await repository.record_status_change(session, [address], body.status, "api")
    return await get(session, address), created


async def patch(session: AsyncSession, email: str, body: ContactPatch) -> ContactOut:
    """Merge a change into the existing contact at ``email`` (404 if there is none):
    attributes merged (null removes a key), tags added and removed, status changed."""
    address = valid_address(email, ["path", "email"])
    _check_attributes(body.attributes, ["body", "attributes"])
    found = await repository.patch(
        session, address, body.attributes, _tags(body.tags_add), _tags(body.tags_remove)
    )
    if not found:
        raise NotFound(f"no contact {address!r}: create it with PUT /v1/contacts/{{email}}")
    if body.status is not None:
        await repository.record_status_change(session, [address], body.status, "api")
    return await get(session, address)


def _tags(tags: list[str]) -> list[str]:
    return sorted({t.strip() for t in tags if t.strip()})


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
    found = await repository.get(session, normalise(email))
    if found is None:
        raise NotFound(f"no contact {normalise(email)!r}")
    return _out(*found)


async def page(session: AsyncSession, tree: dict[str, Any] | None, page: Page[int]) -> ContactPage:
    """Contacts by id, ``limit`` at a time, optionally those a segment filter matches."""
    where: ColumnElement[bool] = true()
    if tree is not None:
        where = compile_filter(tree)
        await audience_repository.custom_plans(session)
    rows, next_cursor = page.cut(
        await repository.page(session, where, page.last or 0, page.fetch), key=lambda r: r[0].id
    )
    return ContactPage(items=[_out(c, s) for c, s in rows], next_cursor=next_cursor)


def address_hmac(secret_key: str, address: str) -> str:
    return hmac.new(secret_key.encode(), address.encode(), hashlib.sha256).hexdigest()


async def was_erased(session: AsyncSession, keys: Sequence[str], email: str) -> bool:
    """Whether ``email`` was erased: its HMAC under any verifying key (``mailer.secrets``)
    is recorded, so an erasure recorded before a key rotation is still found."""
    address = normalise(email)
    return await repository.erased(session, [address_hmac(k, address) for k in keys])


async def erase(session: AsyncSession, email: str, secret_key: str) -> ErasureOut:
    """Erase the personal data of ``email`` (right to be forgotten); 404 if there is none.

    The suppression, if any, stays: it is what keeps the address from being mailed again.
    The erasure is recorded by an HMAC of the address under ``secret_key`` (the signing
    key), never the address itself.
    """
    address = normalise(email)
    existed, messages, events, suppressed = await repository.erase(
        session, address, address_hmac(secret_key, address)
    )
    if not existed and not messages and not events:
        raise NotFound(f"no contact {address!r}")
    return ErasureOut(email_erased=existed, messages=messages, events=events, suppressed=suppressed)


# --- CSV imports ---------------------------------------------------------------------------

log = structlog.get_logger(__name__)

IMPORT_CHUNK_ROWS = 100_000
IMPORT_LANES = 2  # chunks merged at once, each on a connection (and a PostgreSQL core)
SPOOL_PIECE = 64 * 1024  # bytes of a spooled upload parsed at a time (in a thread)
_NOT_CSV_TYPES = ("multipart/", "application/json", "application/x-www-form-urlencoded")


async def enqueue_import(redis: ArqRedis, import_id: int) -> None:
    # one job id per import: enqueuing it again while it is queued or running is a no-op
    await redis.enqueue_job(
        "import_contacts", import_id, _job_id=f"import:{import_id}", _queue_name=IMPORT_QUEUE
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
    row = await repository.create_import(session)
    import_id = row.id
    upload = importer.Upload(extra_tags=extra)
    stage = await repository.stager(session, import_id)
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


class _Abandoned(Exception):  # noqa: N818 - control flow, never seen outside
    """A chunk whose predecessor did not commit (or another run moved the import on)."""


async def run_import(
    sessionmaker: async_sessionmaker[AsyncSession],
    import_id: int,
    chunk_rows: int = IMPORT_CHUNK_ROWS,
    on_chunk: Callable[[int], None] | None = None,
    lanes: int = IMPORT_LANES,
) -> str:
    """Merge the staged rows of an import into contacts, chunk by chunk; its final status.

    Each chunk (a range of rows) goes into contacts and is counted, with the row it
    reached (merged_through), in one transaction, so a re-run after a crash neither skips
    nor double-counts rows; the staged rows go when the import finishes. ``lanes`` chunks
    are merged at once, each on its own connection (PostgreSQL then works on as many
    cores), and commit in order (see _merge_ranges). A re-run of a finished import does
    nothing; of two runs at once, one stops ("superseded"). ``on_chunk(rows)`` reports
    progress (the CLI's bar).
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
    progress = _Progress(int(state.merged_through))
    keys = list(state.attribute_keys)
    # checked once a run: whether an address left is a contact already ("fresh": none is),
    # and the repeats marked only when needed (a chunk that is not fresh, or a fresh one
    # that failed on a repeated address)
    fresh: bool | None = None
    marked, unsubscribed = False, True
    while True:
        try:
            if fresh is None or not (fresh or marked):
                async with transaction(sessionmaker) as session:
                    state = await repository.lock_import(session, import_id)
                    if not _current(state, progress.done):
                        return "superseded"
                    if fresh is None:
                        fresh = not await repository.meets_contacts(
                            session, import_id, progress.done
                        )
                        unsubscribed = await repository.any_unsubscribed(
                            session, import_id, progress.done
                        )
                    if not fresh and not marked:
                        await repository.mark_duplicates(session, import_id, importer.MAX_ERRORS)
                        marked = True
            merge = _Merge(keys, fresh, unsubscribed)
            await _merge_ranges(
                sessionmaker, import_id, merge, chunk_rows, lanes, progress, on_chunk
            )
            async with transaction(sessionmaker) as session:
                state = await repository.lock_import(session, import_id)
                if not _current(state, progress.done):
                    return "superseded"
                return await _finish(session, import_id, state)
        except _Abandoned:
            return "superseded"
        except DBAPIError as exc:
            if not (fresh and (_email_taken(exc) or _deadlock(exc))):
                raise
            # a repeated address in the file (or a contact created meanwhile): mark the
            # repeats and look again; a second time, merge the rest as updates. (Two
            # chunks at once that repeat an address of each other may also deadlock.)
            log.info(
                "import_chunk_conflict", import_id=import_id, after=progress.done, marked=marked
            )
            if not marked:
                async with transaction(sessionmaker) as session:
                    state = await repository.lock_import(session, import_id)
                    if not _current(state, progress.done):
                        return "superseded"
                    await repository.mark_duplicates(session, import_id, importer.MAX_ERRORS)
                marked, fresh = True, None
            else:
                fresh = False


@dataclass(frozen=True)
class _Merge:
    keys: list[str]  # the attributes, in the order of the staged values
    fresh: bool  # no address left is a contact yet (repository.merge_range)
    unsubscribed: bool  # some row left has that status


@dataclass
class _Progress:
    done: int  # the import's rows are merged through this one


def _current(state: Any, done: int) -> bool:
    """Whether this run still owns the import (running, merged as far as it knows)."""
    return state is not None and state.status == "running" and state.merged_through == done


async def _merge_ranges(
    sessionmaker: async_sessionmaker[AsyncSession],
    import_id: int,
    merge: _Merge,
    chunk_rows: int,
    lanes: int,
    progress: _Progress,
    on_chunk: Callable[[int], None] | None,
) -> None:
    """Merge every chunk after ``progress.done``, ``lanes`` at a time, each in its own
    transaction on its own connection, ``progress.done`` moved as each commits.

    The chunks commit in order whatever order they finish in: each holds a lock named by
    its range (hold_chunk) and the next one, its rows merged, waits for it (wait_chunk)
    and records itself only if the earlier one was recorded (merged_through is where it
    starts), else rolls back. So merged_through only ever moves over contiguous merged
    rows, as with one chunk at a time. The first failure is raised once every chunk in
    flight has ended."""
    running: deque[asyncio.Task[repository.Chunk]] = deque()
    after = progress.done
    previous: tuple[int, asyncio.Task[repository.Chunk]] | None = None
    exhausted = False
    try:
        while running or not exhausted:
            while not exhausted and len(running) < lanes:
                async with sessionmaker() as session:
                    bounds = await repository.next_range(session, import_id, after, chunk_rows)
                if bounds is None:
                    exhausted = True
                    break
                holding = asyncio.Event()
                running.append(
                    asyncio.create_task(
                        _merge_one(sessionmaker, import_id, merge, bounds, previous, holding)
                    )
                )
                # the next chunk waits for this one's lock: it must be held first
                held = asyncio.create_task(holding.wait())
                await asyncio.wait([running[-1], held], return_when=asyncio.FIRST_COMPLETED)
                held.cancel()
                after, previous = bounds[1], (bounds[0], running[-1])
            if running:
                chunk = await running[0]
                running.popleft()
                assert chunk.last_row is not None
                progress.done = chunk.last_row
                if on_chunk is not None:
                    on_chunk(chunk.good)
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            for task in running:
                task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        raise


async def _merge_one(
    sessionmaker: async_sessionmaker[AsyncSession],
    import_id: int,
    merge: _Merge,
    bounds: tuple[int, int],
    previous: tuple[int, asyncio.Task[repository.Chunk]] | None,
    holding: asyncio.Event,
) -> repository.Chunk:
    """One chunk, merged and recorded in one transaction (see _merge_ranges); after the
    chunk ``previous`` (where it starts, its task) of the same run, if any, committed."""
    after, last = bounds
    async with transaction(sessionmaker) as session:
        await repository.hold_chunk(session, import_id, after)
        holding.set()
        started = time.perf_counter()
        chunk = await repository.merge_range(
            session, import_id, merge.keys, after, last, merge.fresh, merge.unsubscribed
        )
        merged = time.perf_counter()
        if previous is not None:
            # its transaction has ended once its lock is free; then its task ends too.
            # Recorded by another run, it is not this run's to follow.
            await repository.wait_chunk(session, import_id, previous[0])
            await asyncio.wait([previous[1]])
            if previous[1].cancelled() or previous[1].exception() is not None:
                raise _Abandoned
        state = await repository.lock_import(session, import_id)
        if not _current(state, after):
            raise _Abandoned
        await repository.record_chunk(
            session,
            import_id,
            last_row=last,
            created=chunk.created,
            updated=chunk.good - chunk.created,
        )
        log.info(
            "import_chunk_merged",
            import_id=import_id,
            after=after,
            rows=chunk.good,
            fresh=merge.fresh,
            seconds=round(merged - started, 3),
            waited=round(time.perf_counter() - merged, 3),
        )
    return chunk


def _deadlock(exc: DBAPIError) -> bool:
    return getattr(exc.orig, "sqlstate", None) == "40P01"


def _email_taken(exc: DBAPIError) -> bool:
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
