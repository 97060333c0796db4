"""Contact imports, the upload's side: the SQL of the import's row, the COPY of good rows into
the staging table, and the report (the job merges them: ``import_repository``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.models import ContactImport


async def create_import(session: AsyncSession) -> ContactImport:
    row = ContactImport()
    session.add(row)
    await session.flush()
    return row


async def get_import(session: AsyncSession, import_id: int) -> ContactImport | None:
    return await session.get(ContactImport, import_id)


Staged = list[tuple[int, str, str, str, str | None, str | None]]


async def topic_names(session: AsyncSession) -> list[tuple[int, str]]:
    """(id, name) of every topic: what a file's topics columns may name."""
    rows = await session.execute(text("SELECT id, name FROM topics"))
    return [(int(r[0]), str(r[1])) for r in rows]


async def stager(
    session: AsyncSession, import_id: int
) -> Callable[[Staged], Coroutine[Any, Any, None]]:
    """A function that COPYs good rows of an upload into the staging table, in the
    session's transaction (an upload cut short, by a 413 or a dropped connection, leaves
    nothing behind). It uses the driver connection alone, so one COPY may run while the
    caller parses the next stretch (never two at once, nor with other statements)."""
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None  # the session's connection is checked out and open

    async def stage(records: Staged) -> None:
        await raw.copy_records_to_table(
            "contact_import_rows",
            records=[(import_id, *r) for r in records],
            columns=["import_id", "row", "email", "attribute_values", "tags", "status", "topics"],
        )

    return stage


async def finish_upload(
    session: AsyncSession,
    import_id: int,
    *,
    read: int,
    rejected: int,
    errors: list[dict[str, object]],
    keys: list[str],
    with_topics: bool = False,
) -> None:
    await session.execute(
        text(
            "UPDATE contact_imports SET total_rows = :read, rejected = :rejected,"
            " errors = CAST(:errors AS jsonb), attribute_keys = :keys,"
            " with_topics = :with_topics WHERE id = :id"
        ),
        {
            "id": import_id,
            "read": read,
            "rejected": rejected,
            "errors": json.dumps(errors),
            "keys": keys,
            "with_topics": with_topics,
        },
    )
