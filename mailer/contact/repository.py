from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import defer

from mailer.models import Contact, ContactImport, Suppression

# xmax = 0 tells an inserted row from an updated one in the same statement
_UPSERT = text(
    """
    INSERT INTO contacts (email, attributes, tags)
    VALUES (:email, CAST(:attributes AS jsonb), :tags)
    ON CONFLICT (email) DO UPDATE
       SET attributes = EXCLUDED.attributes, tags = EXCLUDED.tags, updated_at = now()
    RETURNING id, (xmax = 0) AS inserted
    """
)


async def upsert(
    session: AsyncSession, email: str, attributes: dict[str, Any], tags: list[str]
) -> tuple[int, bool]:
    import json

    row = (
        await session.execute(
            _UPSERT, {"email": email, "attributes": json.dumps(attributes), "tags": tags}
        )
    ).one()
    return int(row.id), bool(row.inserted)


async def get(session: AsyncSession, email: str) -> tuple[Contact, bool] | None:
    suppressed = select(Suppression.email).where(Suppression.email == Contact.email).exists()
    row = (
        await session.execute(select(Contact, suppressed).where(Contact.email == email))
    ).one_or_none()
    return None if row is None else (row[0], bool(row[1]))


# --- imports -------------------------------------------------------------------------------

async def create_import(session: AsyncSession, source: bytes) -> ContactImport:
    row = ContactImport(source=source)
    session.add(row)
    await session.flush()
    return row


async def get_import(session: AsyncSession, import_id: int) -> ContactImport | None:
    # the upload itself is never needed to answer a status request
    query = select(ContactImport).options(defer(ContactImport.source)).where(
        ContactImport.id == import_id)
    return (await session.execute(query)).scalar_one_or_none()


_LOCK_IMPORT = text(
    "SELECT status, total_rows, jsonb_array_length(errors) AS kept"
    " FROM contact_imports WHERE id = :id FOR UPDATE"
)


async def lock_import(session: AsyncSession, import_id: int) -> tuple[str, int, int] | None:
    """(status, rows done, error entries kept) of an import, locked for this transaction."""
    row = (await session.execute(_LOCK_IMPORT, {"id": import_id})).one_or_none()
    return None if row is None else (row.status, int(row.total_rows), int(row.kept))


async def start_import(session: AsyncSession, import_id: int) -> None:
    await session.execute(
        text("UPDATE contact_imports SET status = 'running' WHERE id = :id"), {"id": import_id})


async def import_source(session: AsyncSession, import_id: int) -> bytes | None:
    query = select(ContactImport.source).where(ContactImport.id == import_id)
    return (await session.execute(query)).scalar_one_or_none()


# The chunk's rows go to a temporary table by COPY, then into contacts in one statement.
# Attributes merge key by key and tags unite; status is left alone, so an unsubscribed
# contact stays unsubscribed. Rows that would not change are not rewritten (a re-import of
# the same file costs no new row versions), and are counted as updated all the same.
_STAGING = text(
    """
    CREATE TEMP TABLE contact_import_rows (email text, attribute_values text[], tags text[])
        ON COMMIT DROP
    """
)
_MERGE = text(
    """
    WITH upserted AS (
        INSERT INTO contacts AS c (email, attributes, tags)
        SELECT email, jsonb_strip_nulls(jsonb_object(CAST(:keys AS text[]), attribute_values)),
               tags
          FROM contact_import_rows
        ON CONFLICT (email) DO UPDATE
           SET attributes = c.attributes || EXCLUDED.attributes,
               tags = CASE WHEN c.tags @> EXCLUDED.tags THEN c.tags
                           ELSE ARRAY(SELECT DISTINCT t FROM unnest(c.tags || EXCLUDED.tags) AS t
                                      ORDER BY 1) END,
               updated_at = now()
         WHERE NOT (c.attributes @> EXCLUDED.attributes AND c.tags @> EXCLUDED.tags)
        RETURNING xmax = 0 AS inserted
    )
    SELECT count(*) FILTER (WHERE inserted) FROM upserted
    """
)


async def merge_contacts(session: AsyncSession, keys: list[str],
                         records: Iterable[tuple[str, list[str | None], list[str]]]) -> int:
    """Upsert (email, attribute values, tags) records, unique by email; the number created.

    The values line up with ``keys``; a None value leaves that attribute alone.
    """
    await session.execute(_STAGING)
    connection = await session.connection()
    raw = (await connection.get_raw_connection()).driver_connection
    assert raw is not None  # the session's connection is checked out and open
    await raw.copy_records_to_table(
        "contact_import_rows", records=records, columns=["email", "attribute_values", "tags"])
    return int((await session.execute(_MERGE, {"keys": keys})).scalar_one())


_RECORD_CHUNK = text(
    """
    UPDATE contact_imports
       SET total_rows = total_rows + :read, created = created + :created,
           updated = updated + :updated, rejected = rejected + :rejected,
           errors = errors || CAST(:errors AS jsonb)
     WHERE id = :id
    """
)


async def record_chunk(session: AsyncSession, import_id: int, *, read: int, created: int,
                       updated: int, rejected: int, errors: list[dict[str, object]]) -> None:
    import json

    await session.execute(_RECORD_CHUNK, {
        "id": import_id, "read": read, "created": created, "updated": updated,
        "rejected": rejected, "errors": json.dumps(errors)})


async def finish_import(session: AsyncSession, import_id: int, status: str,
                        failure: str | None = None) -> None:
    # the upload is dropped once it has been read: it is personal data and large
    await session.execute(
        text("UPDATE contact_imports SET status = :status, failure = :failure, source = NULL,"
             " finished_at = now() WHERE id = :id"),
        {"id": import_id, "status": status, "failure": failure})


async def unfinished_imports(session: AsyncSession) -> list[int]:
    query = select(ContactImport.id).where(ContactImport.status.in_(("pending", "running")))
    return list((await session.execute(query)).scalars())
