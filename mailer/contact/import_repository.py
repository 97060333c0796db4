"""Contact imports: the SQL of merging a CSV's staged rows into the contacts in chunks (the
merge is set-based: one statement per chunk; the upload that stages them: ``import_staging``)."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.contact.csv_columns import split_type
from mailer.models import ContactImport
from mailer.models.subscription import set_topics_sql

_LOCK_IMPORT = text(
    "SELECT status, merged_through, jsonb_array_length(errors) AS kept, attribute_keys,"
    " total_rows, created + updated + rejected AS accounted, with_topics"
    " FROM contact_imports WHERE id = :id FOR UPDATE"
)


async def lock_import(session: AsyncSession, import_id: int) -> Any:
    """(status, merged_through, kept, attribute_keys, total_rows, accounted, with_topics)
    of an import, locked for this transaction; None if there is none."""
    return (await session.execute(_LOCK_IMPORT, {"id": import_id})).one_or_none()


# A repeated address inside one file is a bad row: the first occurrence is imported, the
# later ones are reported. Found here, in one hash aggregate over the staged rows, because
# remembering every address while the upload streams would cost the API that memory. The
# repeats are reported (and counted as rejected) at once, in the same transaction; the
# chunks merge only the rows without duplicate_of. Marking again marks nothing new.
_MARK_DUPLICATES = text(
    """
    WITH marked AS (
        UPDATE contact_import_rows r SET duplicate_of = d.first_row
          FROM (SELECT email, min(row) AS first_row FROM contact_import_rows
                 WHERE import_id = :id GROUP BY email HAVING count(*) > 1) d
         WHERE r.import_id = :id AND r.email = d.email AND r.row > d.first_row
           AND r.duplicate_of IS NULL
        RETURNING r.row, r.email, r.duplicate_of
    )
    UPDATE contact_imports
       SET rejected = rejected + (SELECT count(*) FROM marked),
           errors = errors || (
               SELECT coalesce(jsonb_agg(jsonb_build_object(
                          'row', row, 'email', email, 'reason',
                          'duplicate of row ' || duplicate_of || ' (the first one is imported)')
                          ORDER BY row), '[]')
                 FROM (SELECT row, email, duplicate_of FROM marked
                        ORDER BY row LIMIT greatest(:max_errors - jsonb_array_length(errors), 0)) e)
     WHERE id = :id
    """
)


async def start_import(session: AsyncSession, import_id: int) -> None:
    # the staged rows are fresh: without statistics the chunks would be planned as tiny.
    # A small sample is enough for that.
    await session.execute(text("SET LOCAL default_statistics_target = 10"))
    await session.execute(text("ANALYZE contact_import_rows"))
    await session.execute(
        text("UPDATE contact_imports SET status = 'running' WHERE id = :id"), {"id": import_id}
    )


async def mark_duplicates(session: AsyncSession, import_id: int, max_errors: int) -> None:
    """Mark (and report, up to ``max_errors`` errors in all) the repeated addresses of an
    import: needed before a chunk that is not ``fresh`` (see merge_range)."""
    await session.execute(text("SET LOCAL work_mem = '128MB'"))
    await session.execute(_MARK_DUPLICATES, {"id": import_id, "max_errors": max_errors})


# Chunks are ranges of row numbers (lines of the file), from the first staged row after
# the last one merged; a range holds at most ``limit`` rows (fewer where lines were bad).
_NEXT_ROW = text("SELECT min(row) FROM contact_import_rows WHERE import_id = :id AND row > :after")

# A "status" column moves existing contacts (recorded, source "import"); run before the
# merge, as one statement cannot update a row twice.
_CHUNK_STATUS = text(
    """
    WITH changed AS (
        UPDATE contacts c
           SET status = r.status, updated_at = now(),
               unsubscribed_at = CASE WHEN r.status = 'unsubscribed' THEN now() END
          FROM contact_import_rows r
         WHERE r.import_id = :id AND r.row > :after AND r.row <= :last
           AND r.duplicate_of IS NULL AND r.status IS NOT NULL
           AND c.email = r.email AND c.status <> r.status
        RETURNING c.id, c.status
    )
    INSERT INTO contact_status_changes (contact_id, status, source)
    SELECT id, status, 'import' FROM changed
    """
)

_TEXT_ATTRIBUTES = """jsonb_strip_nulls(jsonb_object(
               CAST(:keys AS text[]), (string_to_array(attribute_values, E'\\x1f', ''))[2:]))"""
# a file with typed columns (csv_columns.COLUMN_TYPES, checked row by row when staged): numbers
# and booleans become JSON numbers and booleans, the rest (dates included) JSON strings
_TYPED_ATTRIBUTES = """(SELECT coalesce(jsonb_object_agg(k, CASE t
                       WHEN 'number' THEN to_jsonb(CAST(v AS numeric))
                       WHEN 'boolean' THEN to_jsonb(CAST(v AS boolean))
                       ELSE to_jsonb(v) END), '{}')
             FROM unnest(CAST(:keys AS text[]),
                         (string_to_array(attribute_values, E'\\x1f', ''))[2:],
                         CAST(:types AS text[])) AS a(k, v, t)
            WHERE v IS NOT NULL)"""


def _chunk_rows(attributes: str) -> str:
    return f"""
    SELECT email, {attributes},
           string_to_array(tags, ';'), coalesce(status, 'subscribed'),
           CASE WHEN status = 'unsubscribed' THEN now() END
      FROM contact_import_rows
     WHERE import_id = :id AND row > :after AND row <= :last AND duplicate_of IS NULL
"""  # noqa: S608 - constant SQL pieces, no input


# The chunk's staged rows go into contacts. Attributes merge key by key and tags unite;
# status is left alone (see _CHUNK_STATUS), so an unsubscribed contact stays unsubscribed.
# Rows that would not change are not rewritten (a re-import of the same file costs no new
# row versions), and count as updated all the same. A contact created unsubscribed has
# that recorded.
def _merge_chunk(attributes: str) -> str:
    return f"""
    WITH upserted AS (
        INSERT INTO contacts AS c (email, attributes, tags, status, unsubscribed_at)
        {_chunk_rows(attributes)}
        ON CONFLICT (email) DO UPDATE
           SET attributes = c.attributes || EXCLUDED.attributes,
               tags = CASE WHEN c.tags @> EXCLUDED.tags THEN c.tags
                           ELSE ARRAY(SELECT DISTINCT t FROM unnest(c.tags || EXCLUDED.tags) AS t
                                      ORDER BY 1) END,
               updated_at = now()
         WHERE NOT (c.attributes @> EXCLUDED.attributes AND c.tags @> EXCLUDED.tags)
        RETURNING id, status, xmax = 0 AS inserted
    ), recorded AS (
        INSERT INTO contact_status_changes (contact_id, status, source)
        SELECT id, status, 'import' FROM upserted WHERE inserted AND status = 'unsubscribed'
    )
    SELECT (SELECT count(*) FROM contact_import_rows
             WHERE import_id = :id AND row > :after AND row <= :last
               AND duplicate_of IS NULL) AS good,
           (SELECT count(*) FROM upserted WHERE inserted) AS created
    """  # noqa: S608 - constant SQL pieces, no input


_MERGE_CHUNK = {
    kind: text(_merge_chunk(sql))
    for kind, sql in ((False, _TEXT_ATTRIBUTES), (True, _TYPED_ATTRIBUTES))
}

# Whether any address still to merge is already a contact. When none is (a first import
# of a file), the chunks need neither _CHUNK_STATUS nor ON CONFLICT: a plain INSERT …
# SELECT costs about half of the upsert's speculative insertion.
_MEETS_CONTACTS = text(
    """
    SELECT EXISTS (SELECT 1 FROM contact_import_rows r JOIN contacts c ON c.email = r.email
                    WHERE r.import_id = :id AND r.row > :after AND r.row <= :last
                      AND r.duplicate_of IS NULL)
    """
)

# _MERGE_CHUNK for a chunk none of whose addresses is a contact yet. A contact created by
# another transaction after the check makes the INSERT fail on the unique email: the chunk
# rolls back whole; so does a repeat of an address inside the file (duplicate_of is only
# marked when needed: most files have no repeats, and the marking costs a hash aggregate
# over every staged row). The job then marks the repeats, checks again and goes on.
# A plain INSERT (its row count is the command tag's): a RETURNING CTE would keep every
# inserted row in a tuplestore (0.4 us a row of the merge's ~5). The contacts created
# unsubscribed are recorded by _RECORD_UNSUBSCRIBED, when the file has any.
_INSERT_CHUNK = {
    typed: text(
        f"""
    INSERT INTO contacts (email, attributes, tags, status, unsubscribed_at)
    {_chunk_rows(sql)}
    """  # noqa: S608 - constant SQL pieces, no input
    )
    for typed, sql in ((False, _TEXT_ATTRIBUTES), (True, _TYPED_ATTRIBUTES))
}

_RECORD_UNSUBSCRIBED = text(
    """
    INSERT INTO contact_status_changes (contact_id, status, source)
    SELECT c.id, 'unsubscribed', 'import'
      FROM contact_import_rows r JOIN contacts c ON c.email = r.email
     WHERE r.import_id = :id AND r.row > :after AND r.row <= :last
       AND r.duplicate_of IS NULL AND r.status = 'unsubscribed'
    """
)

# Whether any row still to merge has status "unsubscribed" (most files have no status
# column): checked once a run, so that fresh chunks skip _RECORD_UNSUBSCRIBED.
_ANY_UNSUBSCRIBED = text(
    """
    SELECT EXISTS (SELECT 1 FROM contact_import_rows
                    WHERE import_id = :id AND row > :after AND status = 'unsubscribed')
    """
)


# A file's topics columns (importer.topic_cells, staged as topic id -> status): each row's
# topics set on its contact by the one statement that changes subscriptions
# (mailer.models.subscription.set_topics_sql), every change with its consent record, source
# "import"; a topic the row does not name is left as it is. Run after the chunk's contacts
# are in: a statement does not see the rows its own CTE inserts.
_CHUNK_TOPICS = text(
    set_topics_sql(
        """
    SELECT c.id AS contact_id, CAST(t.key AS bigint) AS topic_id, t.value AS status,
           CAST(NULL AS bigint) AS form_id, CAST(NULL AS int) AS form_version,
           CAST(NULL AS text) AS shown, CAST(NULL AS text) AS ip, CAST(NULL AS text) AS ua
      FROM contact_import_rows r
      JOIN contacts c ON c.email = r.email
     CROSS JOIN LATERAL jsonb_each_text(r.topics) AS t
     WHERE r.import_id = :id AND r.row > :after AND r.row <= :last
       AND r.duplicate_of IS NULL AND r.topics IS NOT NULL
"""
    )
)
_IMPORT_CONSENT = {"source": "import", "keep_subscribed": False}


async def any_unsubscribed(session: AsyncSession, import_id: int, after: int) -> bool:
    """Whether a row staged after row ``after`` has the status "unsubscribed"."""
    bounds = {"id": import_id, "after": after}
    return bool((await session.execute(_ANY_UNSUBSCRIBED, bounds)).scalar())


_NO_ROW = 2**62  # past any row number


class Chunk(NamedTuple):
    last_row: int | None  # the end of the merged range; None: nothing was left
    good: int  # rows merged (created or updated)
    created: int


async def meets_contacts(
    session: AsyncSession, import_id: int, after: int, last: int = _NO_ROW
) -> bool:
    """Whether an address staged after row ``after`` (through ``last``), not a repeat, is
    already a contact."""
    bounds = {"id": import_id, "after": after, "last": last}
    return bool((await session.execute(_MEETS_CONTACTS, bounds)).scalar())


async def next_range(
    session: AsyncSession, import_id: int, after: int, limit: int
) -> tuple[int, int] | None:
    """The next chunk after row ``after``: (after, last), the range from the first staged
    row after it that holds at most ``limit`` rows; None when no row is left."""
    first = (await session.execute(_NEXT_ROW, {"id": import_id, "after": after})).scalar()
    return None if first is None else (after, int(first) + limit - 1)


async def merge_range(
    session: AsyncSession,
    import_id: int,
    keys: list[str],
    after: int,
    last: int,
    fresh: bool | None = None,
    unsubscribed: bool = True,
    topics: bool = False,
) -> Chunk:
    """Merge the staged rows after row ``after`` through ``last`` into contacts (they stay
    staged until the import finishes: merged_through tells what is left).

    ``fresh``: none of them is a contact yet (True), some may be (False), or find out
    (None). A fresh chunk is a plain INSERT, which fails on the unique email when the file
    repeats an address not marked yet (or a contact was created meanwhile); a chunk that
    is not fresh needs the repeats marked first (mark_duplicates). ``unsubscribed``: False
    when no row left has that status (any_unsubscribed), so none needs recording.
    ``topics``: the file has topics columns (their subscriptions are set after the merge)."""
    # The chunk's commit need not wait for the WAL flush: a crash loses at most the last
    # chunks committed, and merged_through, in the same transactions, is lost with them,
    # so the import resumes after its last durable chunk and merges the lost tail again.
    await session.execute(text("SET LOCAL synchronous_commit = off"))
    bounds = {"id": import_id, "after": after, "last": last}
    columns = [split_type(key) for key in keys]
    typed = any(kind not in (None, "string") for _, kind in columns)
    names = {"keys": [name for name, _ in columns]}
    if typed:
        names["types"] = [kind or "string" for _, kind in columns]
    if fresh is None:
        fresh = not await meets_contacts(session, import_id, after, last)
    if not fresh:
        await session.execute(_CHUNK_STATUS, bounds)
    if fresh:
        result = await session.execute(_INSERT_CHUNK[typed], {**bounds, **names})
        created = int(result.rowcount)  # type: ignore[attr-defined]
        if unsubscribed:
            await session.execute(_RECORD_UNSUBSCRIBED, bounds)
        chunk = Chunk(last, created, created)
    else:
        row = (await session.execute(_MERGE_CHUNK[typed], {**bounds, **names})).one()
        chunk = Chunk(last, int(row.good), int(row.created))
    if topics:
        await session.execute(_CHUNK_TOPICS, {**bounds, **_IMPORT_CONSENT})
    return chunk


# Chunks of one import merged at once commit in order: each holds a transaction-level
# advisory lock named by the import and the row its range starts after, and the chunk
# after it waits for that lock before it records itself. The wait is PostgreSQL's, so a
# cycle (the earlier chunk waiting on a row the later one inserted: an address repeated
# across them) is a deadlock PostgreSQL detects and breaks, not a hang.
_HOLD_CHUNK = text(
    "SELECT pg_advisory_xact_lock(CAST(:id % 2147483647 AS int), CAST(:after % 2147483647 AS int))"
)


async def hold_chunk(session: AsyncSession, import_id: int, after: int) -> None:
    """Hold the chunk after row ``after`` of an import until this transaction ends."""
    await session.execute(_HOLD_CHUNK, {"id": import_id, "after": after})


async def wait_chunk(session: AsyncSession, import_id: int, after: int) -> None:
    """Wait until the transaction merging the chunk after row ``after`` has ended."""
    await session.execute(_HOLD_CHUNK, {"id": import_id, "after": after})


_RECORD_CHUNK = text(
    """
    UPDATE contact_imports
       SET merged_through = :last_row, created = created + :created,
           updated = updated + :updated
     WHERE id = :id
    """
)


async def record_chunk(
    session: AsyncSession, import_id: int, *, last_row: int, created: int, updated: int
) -> None:
    await session.execute(
        _RECORD_CHUNK,
        {"id": import_id, "last_row": last_row, "created": created, "updated": updated},
    )


async def finish_import(
    session: AsyncSession, import_id: int, status: str, failure: str | None = None
) -> None:
    await session.execute(
        text("DELETE FROM contact_import_rows WHERE import_id = :id"), {"id": import_id}
    )
    await session.execute(
        text(
            "UPDATE contact_imports SET status = :status, failure = :failure,"
            " finished_at = now() WHERE id = :id"
        ),
        {"id": import_id, "status": status, "failure": failure},
    )


async def unfinished_imports(session: AsyncSession) -> list[int]:
    query = select(ContactImport.id).where(ContactImport.status.in_(("pending", "running")))
    return list((await session.execute(query)).scalars())
