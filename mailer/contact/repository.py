"""Contacts, their status history, erasure and CSV imports: the SQL."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.contact.importer import split_type
from mailer.models import Contact, ContactImport, ContactStatusChange, Suppression
from mailer.models.contact import CONTACT_STATUSES, STATUS_SOURCES
from mailer.models.subscription import SET_TOPICS_SQL
from mailer.models.suppression import is_suppressed

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
    row = (
        await session.execute(
            _UPSERT, {"email": email, "attributes": json.dumps(attributes), "tags": tags}
        )
    ).one()
    return int(row.id), bool(row.inserted)


_SET_TOPICS = text(SET_TOPICS_SQL)


async def set_topics(
    session: AsyncSession, contact_id: int, topics: Mapping[int, str]
) -> list[int]:
    """Set the contact's subscriptions to topics (source ``api``, each change with its
    consent record; the one statement of ``mailer.models.subscription``); nothing and the
    unknown ids when a topic does not exist."""
    known = await session.execute(
        text("SELECT id FROM topics WHERE id = ANY(:ids)"), {"ids": list(topics)}
    )
    missing = sorted(set(topics) - {int(r[0]) for r in known})
    if not missing:
        params = {"source": "api", "form_id": None, "form_version": None, "shown": None}
        await session.execute(
            _SET_TOPICS,
            {
                **params,
                "ip": None,
                "ua": None,
                "keep_subscribed": False,
                "contacts": [contact_id] * len(topics),
                "topics": list(topics),
                "statuses": list(topics.values()),
            },
        )
    return missing


# A merge, not a replacement: attributes given are set, those given as null removed, tags
# added and removed; tags stay sorted and distinct (as upsert stores them).
_PATCH = text(
    """
    UPDATE contacts
       SET attributes = (attributes || CAST(:set AS jsonb)) - CAST(:unset AS text[]),
           tags = ARRAY(
               SELECT DISTINCT t FROM unnest(tags || CAST(:add AS text[])) AS t
                WHERE t <> ALL(CAST(:remove AS text[]))
                ORDER BY t
           ),
           updated_at = now()
     WHERE email = :email
    RETURNING id
    """
)


async def patch(
    session: AsyncSession,
    email: str,
    attributes: dict[str, Any],
    tags_add: list[str],
    tags_remove: list[str],
) -> bool:
    """Merge a change into the contact at ``email``; False when there is none."""
    row = (
        await session.execute(
            _PATCH,
            {
                "email": email,
                "set": json.dumps({k: v for k, v in attributes.items() if v is not None}),
                "unset": [k for k, v in attributes.items() if v is None],
                "add": tags_add,
                "remove": tags_remove,
            },
        )
    ).first()
    return row is not None


async def by_emails(session: AsyncSession, emails: list[str]) -> dict[str, Contact]:
    """The contacts at these (normalised) addresses, by address."""
    if not emails:
        return {}
    rows = await session.execute(select(Contact).where(Contact.email.in_(emails)))
    return {c.email: c for c in rows.scalars()}


async def page(
    session: AsyncSession, where: ColumnElement[bool], after: int, limit: int
) -> list[tuple[Contact, bool]]:
    """Contacts matching ``where`` with ids after ``after``, by id, with their suppression."""
    suppressed = select(Suppression.email).where(Suppression.email == Contact.email).exists()
    rows = await session.execute(
        select(Contact, suppressed)
        .where(where, Contact.id > after)
        .order_by(Contact.id)
        .limit(limit)
    )
    return [(row[0], bool(row[1])) for row in rows]


# --- status changes --------------------------------------------------------------------------

# Set the status of contacts by address and record each real change with its source, in
# one statement (set-based: a complaint batch or an unsubscribe is one call). Contacts
# already in that status are left alone and not recorded again.
STATUS_CHANGE_SQL = """
    WITH changed AS (
        UPDATE contacts
           SET status = :status, updated_at = now(),
               unsubscribed_at = CASE WHEN :status = 'unsubscribed' THEN now() END
         WHERE email = ANY(CAST(:emails AS text[])) AND status <> :status
        RETURNING id
    )
    INSERT INTO contact_status_changes (contact_id, status, source)
    SELECT id, :status, :source FROM changed
    RETURNING contact_id
"""


async def record_status_change(
    session: AsyncSession, emails: list[str], status: str, source: str
) -> list[int]:
    """Move the contacts at ``emails`` (normalised) to ``status`` ("subscribed" or
    "unsubscribed"), recording ``source`` ("api", "import", "unsubscribe_link",
    "complaint") and the time; the ids of the contacts that changed."""
    if status not in CONTACT_STATUSES:
        raise ValueError(f"unknown contact status {status!r}")
    if source not in STATUS_SOURCES:
        raise ValueError(f"unknown status source {source!r}")
    rows = await session.execute(
        text(STATUS_CHANGE_SQL), {"emails": emails, "status": status, "source": source}
    )
    return [int(r[0]) for r in rows]


async def status_changes(session: AsyncSession, contact_id: int) -> list[ContactStatusChange]:
    query = select(ContactStatusChange).where(ContactStatusChange.contact_id == contact_id)
    return list((await session.execute(query.order_by(ContactStatusChange.id))).scalars())


# --- erasure ---------------------------------------------------------------------------------

# Right to be forgotten: the contact goes, its messages and events keep only what the
# numbers need (status, ids, times), and the raw SNS notifications and import reports that
# name the address lose it. The suppression stays: it is what keeps the address unmailed.
_ERASE_CONTACT = text("DELETE FROM contacts WHERE email = :email RETURNING id")
_ERASE_STATUS = text("DELETE FROM contact_status_changes WHERE contact_id = :id")
_ERASE_MESSAGES = text(
    """
    UPDATE messages
       SET email = '', data = NULL, subject = NULL, html = NULL, text = NULL,
           error = CASE WHEN strpos(lower(error), :email) > 0 THEN '[erased]' ELSE error END
     WHERE email = :email OR (contact_id = :id AND campaign_id IS NOT NULL)
    RETURNING id
    """
)
_ERASE_EVENTS = text(
    """
    UPDATE events SET email = NULL, data = '{}'
     WHERE email = :email OR message_id = ANY(CAST(:messages AS bigint[]))
    RETURNING id
    """
)
_ERASE_NOTIFICATIONS = text(
    """
    UPDATE sns_notifications
       SET body = '{"erased": true}', processed_at = coalesce(processed_at, now()),
           error = coalesce(error, 'erased before processing')
     WHERE strpos(lower(body::text), :email) > 0
    """
)
_ERASE_IMPORT_REPORTS = text(
    """
    UPDATE contact_imports
       SET errors = (SELECT jsonb_agg(CASE WHEN strpos(lower(e ->> 'email'), :email) > 0
                                           THEN jsonb_set(e, '{email}', '""') ELSE e END
                                      ORDER BY n)
                       FROM jsonb_array_elements(errors) WITH ORDINALITY AS x(e, n))
     WHERE strpos(lower(errors::text), :email) > 0
    """
)
_ERASE_STAGED = text("DELETE FROM contact_import_rows WHERE email = :email")
_RECORD_ERASURE = text(
    f"""
    INSERT INTO contact_erasures (address_hmac, messages, events, suppressed)
    VALUES (:hmac, :messages, :events, {is_suppressed(":email")})
    RETURNING suppressed
    """  # noqa: S608 - constant fragments, no input
)


async def erased(session: AsyncSession, address_hmacs: list[str]) -> bool:
    """Whether an erasure is recorded under any of these HMACs of one address."""
    found = await session.execute(
        text("SELECT EXISTS (SELECT 1 FROM contact_erasures WHERE address_hmac = ANY(:h))"),
        {"h": address_hmacs},
    )
    return bool(found.scalar_one())


async def erase(
    session: AsyncSession, email: str, address_hmac: str
) -> tuple[bool, int, int, bool]:
    """(contact existed, messages erased, events erased, still suppressed)."""
    contact_id = (await session.execute(_ERASE_CONTACT, {"email": email})).scalar()
    if contact_id is not None:
        await session.execute(_ERASE_STATUS, {"id": contact_id})
    messages = [
        int(m)
        for m in (
            await session.execute(_ERASE_MESSAGES, {"email": email, "id": contact_id})
        ).scalars()
    ]
    events = len(
        (await session.execute(_ERASE_EVENTS, {"email": email, "messages": messages})).all()
    )
    await session.execute(_ERASE_NOTIFICATIONS, {"email": email})
    await session.execute(_ERASE_IMPORT_REPORTS, {"email": email})
    await session.execute(_ERASE_STAGED, {"email": email})
    suppressed = bool(
        (
            await session.execute(
                _RECORD_ERASURE,
                {"hmac": address_hmac, "messages": len(messages), "events": events, "email": email},
            )
        ).scalar_one()
    )
    return contact_id is not None, len(messages), events, suppressed


async def get(session: AsyncSession, email: str) -> tuple[Contact, bool] | None:
    suppressed = select(Suppression.email).where(Suppression.email == Contact.email).exists()
    row = (
        await session.execute(select(Contact, suppressed).where(Contact.email == email))
    ).one_or_none()
    return None if row is None else (row[0], bool(row[1]))


# --- imports -------------------------------------------------------------------------------


async def create_import(session: AsyncSession) -> ContactImport:
    row = ContactImport()
    session.add(row)
    await session.flush()
    return row


async def get_import(session: AsyncSession, import_id: int) -> ContactImport | None:
    return await session.get(ContactImport, import_id)


Staged = list[tuple[int, str, str, str, str | None]]


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
            columns=["import_id", "row", "email", "attribute_values", "tags", "status"],
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
) -> None:
    await session.execute(
        text(
            "UPDATE contact_imports SET total_rows = :read, rejected = :rejected,"
            " errors = CAST(:errors AS jsonb), attribute_keys = :keys WHERE id = :id"
        ),
        {
            "id": import_id,
            "read": read,
            "rejected": rejected,
            "errors": json.dumps(errors),
            "keys": keys,
        },
    )


_LOCK_IMPORT = text(
    "SELECT status, merged_through, jsonb_array_length(errors) AS kept, attribute_keys,"
    " total_rows, created + updated + rejected AS accounted"
    " FROM contact_imports WHERE id = :id FOR UPDATE"
)


async def lock_import(session: AsyncSession, import_id: int) -> Any:
    """(status, merged_through, kept, attribute_keys, total_rows, accounted) of an import,
    locked for this transaction; None if there is none."""
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
# a file with typed columns (importer.COLUMN_TYPES, checked row by row when staged): numbers
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
) -> Chunk:
    """Merge the staged rows after row ``after`` through ``last`` into contacts (they stay
    staged until the import finishes: merged_through tells what is left).

    ``fresh``: none of them is a contact yet (True), some may be (False), or find out
    (None). A fresh chunk is a plain INSERT, which fails on the unique email when the file
    repeats an address not marked yet (or a contact was created meanwhile); a chunk that
    is not fresh needs the repeats marked first (mark_duplicates). ``unsubscribed``: False
    when no row left has that status (any_unsubscribed), so none needs recording."""
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
        return Chunk(last, created, created)
    row = (await session.execute(_MERGE_CHUNK[typed], {**bounds, **names})).one()
    return Chunk(last, int(row.good), int(row.created))


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
