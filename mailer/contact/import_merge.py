"""A CSV import's staged rows merged into contacts, chunk by chunk, several at once, committed
in order (the import job's side; apart from the upload that stages them, in ``imports``)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from mailer.contact import import_repository, importer
from mailer.db import transaction

log = structlog.get_logger(__name__)

IMPORT_CHUNK_ROWS = 100_000
IMPORT_LANES = 2  # chunks merged at once, each on a connection (and a PostgreSQL core)


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
        state = await import_repository.lock_import(session, import_id)
        if state is None:
            return "missing"
        if state.status not in ("pending", "running"):
            return str(state.status)
        if state.status == "pending":
            started = time.perf_counter()
            await import_repository.start_import(session, import_id)
            log.info(
                "import_started",
                import_id=import_id,
                seconds=round(time.perf_counter() - started, 3),
            )
    progress = _Progress(int(state.merged_through))
    keys = list(state.attribute_keys)
    with_topics = bool(state.with_topics)
    # checked once a run: whether an address left is a contact already ("fresh": none is),
    # and the repeats marked only when needed (a chunk that is not fresh, or a fresh one
    # that failed on a repeated address)
    fresh: bool | None = None
    marked, unsubscribed = False, True
    while True:
        try:
            if fresh is None or not (fresh or marked):
                async with transaction(sessionmaker) as session:
                    state = await import_repository.lock_import(session, import_id)
                    if not _current(state, progress.done):
                        return "superseded"
                    if fresh is None:
                        fresh = not await import_repository.meets_contacts(
                            session, import_id, progress.done
                        )
                        unsubscribed = await import_repository.any_unsubscribed(
                            session, import_id, progress.done
                        )
                    if not fresh and not marked:
                        await import_repository.mark_duplicates(
                            session, import_id, importer.MAX_ERRORS
                        )
                        marked = True
            merge = _Merge(keys, fresh, unsubscribed, with_topics)
            await _merge_ranges(
                sessionmaker, import_id, merge, chunk_rows, lanes, progress, on_chunk
            )
            async with transaction(sessionmaker) as session:
                state = await import_repository.lock_import(session, import_id)
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
                    state = await import_repository.lock_import(session, import_id)
                    if not _current(state, progress.done):
                        return "superseded"
                    await import_repository.mark_duplicates(session, import_id, importer.MAX_ERRORS)
                marked, fresh = True, None
            else:
                fresh = False


@dataclass(frozen=True)
class _Merge:
    keys: list[str]  # the attributes, in the order of the staged values
    fresh: bool  # no address left is a contact yet (import_repository.merge_range)
    unsubscribed: bool  # some row left has that status
    topics: bool  # the file has topics columns


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
    running: deque[asyncio.Task[import_repository.Chunk]] = deque()
    after = progress.done
    previous: tuple[int, asyncio.Task[import_repository.Chunk]] | None = None
    exhausted = False
    try:
        while running or not exhausted:
            while not exhausted and len(running) < lanes:
                async with sessionmaker() as session:
                    bounds = await import_repository.next_range(
                        session, import_id, after, chunk_rows
                    )
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
    previous: tuple[int, asyncio.Task[import_repository.Chunk]] | None,
    holding: asyncio.Event,
) -> import_repository.Chunk:
    """One chunk, merged and recorded in one transaction (see _merge_ranges); after the
    chunk ``previous`` (where it starts, its task) of the same run, if any, committed."""
    after, last = bounds
    async with transaction(sessionmaker) as session:
        await import_repository.hold_chunk(session, import_id, after)
        holding.set()
        started = time.perf_counter()
        chunk = await import_repository.merge_range(
            session,
            import_id,
            merge.keys,
            after,
            last,
            merge.fresh,
            merge.unsubscribed,
            merge.topics,
        )
        merged = time.perf_counter()
        if previous is not None:
            # its transaction has ended once its lock is free; then its task ends too.
            # Recorded by another run, it is not this run's to follow.
            await import_repository.wait_chunk(session, import_id, previous[0])
            await asyncio.wait([previous[1]])
            if previous[1].cancelled() or previous[1].exception() is not None:
                raise _Abandoned
        state = await import_repository.lock_import(session, import_id)
        if not _current(state, after):
            raise _Abandoned
        await import_repository.record_chunk(
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
        await import_repository.finish_import(
            session,
            import_id,
            "failed",
            "the staged rows were lost (database restart): upload the file again",
        )
        return "failed"
    await import_repository.finish_import(session, import_id, "completed")
    return "completed"


async def fail_import(
    sessionmaker: async_sessionmaker[AsyncSession], import_id: int, reason: str
) -> None:
    async with transaction(sessionmaker) as session:
        state = await import_repository.lock_import(session, import_id)
        if state is not None and state.status in ("pending", "running"):
            await import_repository.finish_import(session, import_id, "failed", reason[:2000])
