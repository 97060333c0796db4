"""CSV contact imports: good rows in, bad rows reported and skipped."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from mailer.contact import csv_columns, import_merge, import_repository, importer
from mailer.db import transaction

CSV = "text/csv"


async def upload(
    client: httpx.AsyncClient, headers: dict[str, str], body: str | bytes, content_type: str = CSV
) -> httpx.Response:
    content = body.encode() if isinstance(body, str) else body
    return await client.post(
        "/v1/contacts/imports", content=content, headers={**headers, "Content-Type": content_type}
    )


async def run(client, admin, sessionmaker, body: str, **kwargs) -> dict:  # type: ignore[no-untyped-def]
    """Upload ``body``, run the import job function on the real database, read the result."""
    r = await upload(client, admin, body)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "pending"
    import_id = r.json()["id"]
    assert await import_merge.run_import(sessionmaker, import_id, **kwargs) == "completed"
    r = await client.get(f"/v1/contacts/imports/{import_id}", headers=admin)
    assert r.status_code == 200, r.text
    return r.json()


async def contact(client, admin, email: str) -> dict:  # type: ignore[no-untyped-def]
    r = await client.get(f"/v1/contacts/{email}", headers=admin)
    assert r.status_code == 200, r.text
    return r.json()


async def count(engine, sql: str) -> int:  # type: ignore[no-untyped-def]
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


async def test_good_rows_are_imported_with_attributes_and_tags(client, admin, sessionmaker):
    report = await run(
        client,
        admin,
        sessionmaker,
        "email,first_name,city,tags\n"
        "ada@example.test,Ada,London,vip;news\n"
        " Bob@Example.TEST ,Bob,,news\n",
    )
    assert report["status"] == "completed"
    assert (report["total_rows"], report["created"], report["updated"], report["rejected"]) == (
        2,
        2,
        0,
        0,
    )
    assert report["errors"] == [] and report["finished_at"] is not None
    ada = await contact(client, admin, "ada@example.test")
    assert ada["attributes"] == {"first_name": "Ada", "city": "London"}
    assert ada["tags"] == ["news", "vip"] and ada["status"] == "subscribed"
    bob = await contact(client, admin, "bob@example.test")
    assert bob["attributes"] == {"first_name": "Bob"}  # an empty cell sets nothing
    assert bob["tags"] == ["news"]


async def test_bad_rows_are_reported_with_their_line_and_skipped(client, admin, sessionmaker):
    report = await run(
        client,
        admin,
        sessionmaker,
        "email,name\n"
        "good1@example.test,One\n"
        "not-an-address,Two\n"
        ",Three\n"
        "\n"
        "good2@example.test,Four,extra\n"
        "bad@localhost,Five\n"
        '"good3@example.test","Six, with a comma"\n',
    )
    assert (report["total_rows"], report["created"], report["rejected"]) == (6, 2, 4)
    errors = {e["row"]: e for e in report["errors"]}
    assert set(errors) == {3, 4, 6, 7}  # lines of the file; the header is line 1
    assert errors[3]["email"] == "not-an-address"
    assert "not a valid email address" in errors[3]["reason"]
    assert errors[4]["reason"] == "no email address"
    assert errors[6]["reason"] == "expected 2 fields, found 3"
    assert errors[7]["email"] == "bad@localhost"
    assert (await contact(client, admin, "good3@example.test"))["attributes"] == {
        "name": "Six, with a comma"
    }
    r = await client.get("/v1/contacts/good2@example.test", headers=admin)
    assert r.status_code == 404


async def test_reimport_updates_and_merges(client, admin, sessionmaker):
    await run(
        client, admin, sessionmaker, "email,first_name,city,tags\na@example.test,Ann,Oslo,news\n"
    )
    report = await run(
        client,
        admin,
        sessionmaker,
        "email,city,plan,tags\na@example.test,Bergen,pro,vip\nnew@example.test,Rome,,\n",
    )
    assert (report["created"], report["updated"], report["rejected"]) == (1, 1, 0)
    a = await contact(client, admin, "a@example.test")
    assert a["attributes"] == {"first_name": "Ann", "city": "Bergen", "plan": "pro"}
    assert a["tags"] == ["news", "vip"]


async def test_same_file_twice_changes_nothing_the_second_time(client, admin, sessionmaker, engine):
    body = "email,tags\nx@example.test,a;b\ny@example.test,\n"
    await run(client, admin, sessionmaker, body)
    before = await count(engine, "SELECT sum(xmin::text::bigint) FROM contacts")
    report = await run(client, admin, sessionmaker, body)
    assert (report["created"], report["updated"]) == (0, 2)
    assert await count(engine, "SELECT sum(xmin::text::bigint) FROM contacts") == before


async def test_addresses_are_one_contact_whatever_their_case(client, admin, sessionmaker, engine):
    r = await client.put(
        "/v1/contacts/Mixed@Example.test", headers=admin, json={"attributes": {"a": 1}, "tags": []}
    )
    assert r.status_code == 201
    report = await run(
        client,
        admin,
        sessionmaker,
        "EMAIL,Name\nA@B.test,First\na@b.test,Second\nMIXED@example.TEST,M\n",
    )
    # a repeated address is a bad row: the first one is imported, the repeat reported
    assert (report["created"], report["updated"], report["rejected"], report["total_rows"]) == (
        1,
        1,
        1,
        3,
    )
    assert [(e["row"], e["reason"]) for e in report["errors"]] == [
        (3, "duplicate of row 2 (the first one is imported)")
    ]
    assert await count(engine, "SELECT count(*) FROM contacts") == 2
    assert (await contact(client, admin, "a@b.test"))["attributes"] == {"Name": "First"}
    assert (await contact(client, admin, "mixed@example.test"))["attributes"] == {
        "a": 1,
        "Name": "M",
    }


@pytest.mark.parametrize("chunk_rows", [2, 3, 1000])
async def test_repeats_in_a_new_file_are_reported_wherever_they_fall(
    client, admin, sessionmaker, engine, chunk_rows
):
    # none of the addresses is a contact yet: the chunks are plain INSERTs until a repeat
    # (in the same chunk or after its first row's chunk) makes one fail
    body = "email,n\na@x.test,1\nb@x.test,2\nA@x.test,3\nc@x.test,4\nb@x.test,5\na@x.test,6\n"
    report = await run(client, admin, sessionmaker, body, chunk_rows=chunk_rows)
    assert (report["created"], report["updated"], report["rejected"], report["total_rows"]) == (
        3,
        0,
        3,
        6,
    )
    assert [(e["row"], e["reason"]) for e in report["errors"]] == [
        (4, "duplicate of row 2 (the first one is imported)"),
        (6, "duplicate of row 3 (the first one is imported)"),
        (7, "duplicate of row 2 (the first one is imported)"),
    ]
    assert (await contact(client, admin, "a@x.test"))["attributes"] == {"n": "1"}
    assert (await contact(client, admin, "b@x.test"))["attributes"] == {"n": "2"}
    assert await count(engine, "SELECT count(*) FROM contacts") == 3
    assert await count(engine, "SELECT count(*) FROM contact_import_rows") == 0


async def test_unsubscribed_contacts_stay_unsubscribed(client, admin, sessionmaker):
    await client.put("/v1/contacts/gone@example.test", headers=admin, json={})
    async with transaction(sessionmaker) as session:
        await session.execute(
            text("UPDATE contacts SET status = 'unsubscribed', unsubscribed_at = now()")
        )
    await run(client, admin, sessionmaker, "email,tags\ngone@example.test,news\n")
    gone = await contact(client, admin, "gone@example.test")
    assert gone["status"] == "unsubscribed" and gone["tags"] == ["news"]


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        ("name,city\nAda,London\n", CSV, "no 'email' column"),
        ("", CSV, "empty"),
        ("   \n", CSV, "empty"),
        (b"em\xf6ail\nbjork@example.test\n", CSV, "not UTF-8"),
        (b"email\x00,x\n", CSV, "NUL"),
        ("email,email\na@b.test,a@b.test\n", CSV, "appears twice"),
        ("email,,city\n", CSV, "no name"),
        ('{"email": "a@b.test"}', "application/json", "text/csv"),
        ("email," + "x" * 70_000 + "\na@b.test,1\n", CSV, "header row is over"),
    ],
)
async def test_an_unusable_file_is_a_422_and_stores_nothing(
    client, admin, engine, body, content_type, says
):
    r = await upload(client, admin, body, content_type)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid" and says in error["message"]
    assert error["details"][0]["path"][0] in ("body", "header")
    assert await count(engine, "SELECT count(*) FROM contact_imports") == 0


async def test_an_upload_over_the_limit_is_a_413(settings, engine, admin_key):
    from mailer.app import create_app

    app = create_app(settings.model_copy(update={"max_import_bytes": 1000}))
    body = "email\n" + "".join(f"user{i}@example.test\n" for i in range(100))

    async def streamed():  # no Content-Length: the limit holds on the bytes received
        for i in range(0, len(body), 100):
            yield body[i : i + 100].encode()

    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": CSV}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await c.post("/v1/contacts/imports", content=body, headers=headers)
            assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
            r = await c.post("/v1/contacts/imports", content=streamed(), headers=headers)
            assert r.status_code == 413
    assert await count(engine, "SELECT count(*) FROM contact_imports") == 0
    assert await count(engine, "SELECT count(*) FROM contact_import_rows") == 0
    assert await count(engine, "SELECT count(*) FROM contacts") == 0


async def test_unknown_import_is_a_404(client, admin):
    r = await client.get("/v1/contacts/imports/999", headers=admin)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("known", [False, True])
async def test_chunks_merged_at_once_repeating_each_other_count_every_row_once(
    client, admin, sessionmaker, engine, known
):
    # two lanes, two chunks: the second repeats the first's addresses in reverse order,
    # so each lane may wait on a row the other inserted (a deadlock PostgreSQL breaks);
    # ``known``: half of the addresses are contacts already (the upsert path)
    if known:
        await run(
            client,
            admin,
            sessionmaker,
            "email\n" + "".join(f"u{i}@x.test\n" for i in range(0, 300, 2)),
        )
    first = [f"u{i}@x.test,{i}" for i in range(300)]
    body = (
        "email,n\n" + "\n".join(first + [f"U{i}@x.test,r{i}" for i in reversed(range(300))]) + "\n"
    )
    report = await run(client, admin, sessionmaker, body, chunk_rows=300, lanes=2)
    created = 150 if known else 300
    assert (report["created"], report["updated"], report["rejected"]) == (
        created,
        300 - created,
        300,
    )
    reasons = {e["row"]: e["reason"] for e in report["errors"]}
    assert reasons == {
        302 + k: f"duplicate of row {2 + 299 - k} (the first one is imported)" for k in range(300)
    }
    assert (await contact(client, admin, "u7@x.test"))["attributes"] == {"n": "7"}
    assert await count(engine, "SELECT count(*) FROM contacts") == 300
    assert await count(engine, "SELECT count(*) FROM contact_import_rows") == 0


async def test_a_chunk_after_one_that_failed_is_not_recorded(client, admin, sessionmaker, engine):
    """Chunks merged at once commit in order: the second one, merged fine, rolls back when
    the first fails (here a trigger refuses one of its addresses); a re-run merges both."""
    r = await upload(client, admin, "email\n" + "".join(f"u{i}@x.test\n" for i in range(20)))
    import_id = r.json()["id"]
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "CREATE FUNCTION refuse_u3() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF NEW.email = 'u3@x.test' THEN RAISE EXCEPTION 'refused'; END IF;"
                " RETURN NEW; END $$"
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse_u3 BEFORE INSERT ON contacts"
                " FOR EACH ROW EXECUTE FUNCTION refuse_u3()"
            )
        )
    try:
        with pytest.raises(Exception, match="refused"):
            await import_merge.run_import(sessionmaker, import_id, chunk_rows=10, lanes=2)
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DROP TRIGGER refuse_u3 ON contacts"))
            await conn.execute(text("DROP FUNCTION refuse_u3()"))
    assert await count(engine, "SELECT count(*) FROM contacts") == 0
    assert (
        await count(engine, f"SELECT merged_through FROM contact_imports WHERE id = {import_id}")
        == 0
    )
    assert (
        await import_merge.run_import(sessionmaker, import_id, chunk_rows=10, lanes=2)
        == "completed"
    )
    report = (await client.get(f"/v1/contacts/imports/{import_id}", headers=admin)).json()
    assert (report["created"], report["rejected"]) == (20, 0)


async def test_a_finished_import_does_nothing_when_run_again(client, admin, sessionmaker):
    report = await run(client, admin, sessionmaker, "email\na@example.test\n")
    assert await import_merge.run_import(sessionmaker, report["id"]) == "completed"
    again = (await client.get(f"/v1/contacts/imports/{report['id']}", headers=admin)).json()
    assert again == report


async def test_a_crashed_import_resumes_after_its_last_chunk(client, admin, sessionmaker):
    r = await upload(client, admin, "email\n" + "".join(f"u{i}@example.test\n" for i in range(7)))
    import_id = r.json()["id"]
    # as left by a worker that died after committing its first chunk of 3 rows
    async with transaction(sessionmaker) as session:
        await import_repository.lock_import(session, import_id)
        await import_repository.start_import(session, import_id)
    async with transaction(sessionmaker) as session:
        bounds = await import_repository.next_range(session, import_id, 0, 3)
        assert bounds is not None
        chunk = await import_repository.merge_range(session, import_id, [], *bounds)
        assert chunk.last_row is not None
        await import_repository.record_chunk(
            session, import_id, last_row=chunk.last_row, created=chunk.created, updated=0
        )
    assert await count(sessionmaker.kw["bind"], "SELECT count(*) FROM contacts") == 3
    assert await import_merge.run_import(sessionmaker, import_id, chunk_rows=3) == "completed"
    report = (await client.get(f"/v1/contacts/imports/{import_id}", headers=admin)).json()
    assert (report["total_rows"], report["created"], report["updated"]) == (7, 7, 0)


async def test_two_runs_at_once_count_every_row_once(client, admin, sessionmaker, engine):
    body = "email\n" + "".join(f"u{i}@example.test\n" for i in range(50))
    import_id = (await upload(client, admin, body)).json()["id"]
    results = await asyncio.gather(
        import_merge.run_import(sessionmaker, import_id, chunk_rows=5),
        import_merge.run_import(sessionmaker, import_id, chunk_rows=5),
    )
    assert "completed" in results
    report = (await client.get(f"/v1/contacts/imports/{import_id}", headers=admin)).json()
    assert (report["status"], report["total_rows"], report["created"]) == ("completed", 50, 50)
    assert await count(engine, "SELECT count(*) FROM contacts") == 50


async def test_errors_are_capped_but_every_reject_is_counted(client, admin, sessionmaker):
    body = "email\n" + "bad\n" * (importer.MAX_ERRORS + 5) + "ok@example.test\n"
    report = await run(client, admin, sessionmaker, body, chunk_rows=300)
    assert report["rejected"] == importer.MAX_ERRORS + 5 and report["created"] == 1
    assert len(report["errors"]) == importer.MAX_ERRORS
    assert report["errors"][-1]["row"] == importer.MAX_ERRORS + 1


async def wait_finished(client, admin, import_id: int, within: float = 60) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + within
    report: dict = {}
    while time.monotonic() < deadline:
        report = (await client.get(f"/v1/contacts/imports/{import_id}", headers=admin)).json()
        if report["status"] in ("completed", "failed"):
            break
        await asyncio.sleep(0.2)
    return report


async def test_a_worker_runs_the_import(client, admin, start_worker):
    worker = start_worker()
    r = await upload(client, admin, "email,tags\nw1@example.test,x\nnope,\n")
    report = await wait_finished(client, admin, r.json()["id"])
    assert report["status"] == "completed", worker.log()
    assert (report["created"], report["rejected"]) == (1, 1)
    assert report["errors"][0]["row"] == 3


def _children(pid: int) -> dict[int, str]:
    """The child processes of ``pid`` and their names (``mailer-<queue>``, workers.main)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            name = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and _alive(int(entry.name)):
            found[int(entry.name)] = name
    return found


def _argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


async def _child_named(worker, name: str, deadline: float, other_than: int = 0) -> int:  # type: ignore[no-untyped-def]
    while not (found := [p for p, n in _children(worker.process.pid).items() if n == name]) or (
        found == [other_than]
    ):
        assert time.monotonic() < deadline, worker.log()
        await asyncio.sleep(0.1)
    [child] = [p for p in found if p != other_than]
    return child


async def test_imports_run_in_a_process_of_their_own_and_stop_with_the_worker(
    client, admin, start_worker
):
    """``mailer worker`` (all queues) works the imports queue in a child process, so a
    running import never holds the senders' event loop, and the transactional queue in
    another, so the campaign's senders never hold its loop; a stop stops them too."""
    worker = start_worker()
    deadline = time.monotonic() + 30
    child = await _child_named(worker, "mailer-imports", deadline)
    lane = await _child_named(worker, "mailer-transact", deadline)
    assert lane != child
    r = await upload(client, admin, "email\nown@example.test\n")
    report = await wait_finished(client, admin, r.json()["id"])
    assert report["status"] == "completed" and report["created"] == 1, worker.log()

    worker.stop()
    assert worker.process.returncode == 0, worker.log()
    assert child not in _children(worker.process.pid)
    assert not _alive(child) and not _alive(lane)


async def test_a_child_worker_that_dies_is_started_again(client, admin, start_worker):
    """The imports child SIGKILLed: the worker starts a new one (a fresh ``mailer worker
    --queues imports``), which runs the next import; the worker still stops cleanly."""
    worker = start_worker()
    deadline = time.monotonic() + 30
    first = await _child_named(worker, "mailer-imports", deadline)
    os.kill(first, signal.SIGKILL)
    second = await _child_named(worker, "mailer-imports", time.monotonic() + 30, other_than=first)
    assert _argv(second)[-2:] == ["--queues", "imports"], _argv(second)
    r = await upload(client, admin, "email\nagain@example.test\n")
    report = await wait_finished(client, admin, r.json()["id"])
    assert report["status"] == "completed" and report["created"] == 1, worker.log()
    worker.stop()
    assert worker.process.returncode == 0, worker.log()
    assert not _alive(second)


async def test_an_import_whose_job_redis_lost_still_runs(client, admin, redis, start_worker):
    r = await upload(client, admin, "email\nlost@example.test\n")
    await redis.flushdb()
    worker = start_worker()
    report = await wait_finished(client, admin, r.json()["id"])
    assert report["status"] == "completed" and report["created"] == 1, worker.log()


TRICKY = [
    "a@b.co",
    "a.b@c.d.museum",
    "a..b@c.com",
    ".a@b.com",
    "a.@b.com",
    "a@-b.com",
    "a@b-.com",
    "a@b.c",
    "a@b.123",
    "a@localhost",
    "a@b.local",
    "a@x.onion",
    "a@b.invalid",
    "a@in-addr.arpa",
    "a@xn--nxasmq6b.com",
    "a@xn--zz.com",
    "a@ab--cd.com",
    "a@b.test",
    "x" * 65 + "@b.com",
    "a@" + "b" * 64 + ".com",
    "a@" + ("b" * 60 + ".") * 5 + "com",
    "o'neil@b.com",
    "a+tag@b.com",
    "a{b}@c.org",
    "a@b_c.com",
    "a b@c.com",
    "a@b..com",
    "a@.b.com",
]


@pytest.mark.parametrize("address", TRICKY)
def test_the_fast_check_accepts_only_what_email_validator_accepts(address: str) -> None:
    assert csv_columns.fast_valid(address) == csv_columns._fast_valid_by_parts(address)
    if csv_columns.fast_valid(address):
        validate_email(address, check_deliverability=False, test_environment=True)
    try:
        validate_email(address, check_deliverability=False, test_environment=True)
        expected = None
    except EmailNotValidError:
        expected = "invalid"
    assert (csv_columns.address_problem(address) is None) == (expected is None)


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"[a-z0-9.!#'+_{}~-]{1,70}@[a-z0-9.-]{1,80}\.[a-z0-9-]{1,10}", fullmatch=True))
def test_the_fast_check_never_accepts_an_invalid_address(address: str) -> None:
    assert csv_columns.fast_valid(address) == csv_columns._fast_valid_by_parts(address)
    if csv_columns.fast_valid(address):
        validate_email(address, check_deliverability=False, test_environment=True)


async def test_attribute_values_are_kept_as_written(client, admin, sessionmaker):
    await run(
        client,
        admin,
        sessionmaker,
        'email,note,city\nq@example.test,"He said ""hi"" \\ to Zoë",Zürich\n',
    )
    assert (await contact(client, admin, "q@example.test"))["attributes"] == {
        "note": 'He said "hi" \\ to Zoë',
        "city": "Zürich",
    }


BAD_ROWS_CSV = (
    (
        b"email,first_name,note,tags\n"  # 1
        b"keep@example.test,Kim,plain,news\n"  # 2 good
        b"not-an-address,Nope,,\n"  # 3 invalid address
        b",Empty,,\n"  # 4 no address
        b"KEEP@example.test,Again,,\n"  # 5 duplicate of row 2
        b"few@example.test,Few\n"  # 6 wrong column count
        b"many@example.test,Many,x,y,z\n"  # 7 wrong column count
    )
    + (
        b"latin@example.test,Bj\xf6rk,,\n"  # 8 bad encoding
    )
    + (
        "big@example.test,Big," + "x" * (csv_columns.MAX_FIELD + 1) + ",\n"  # 9 oversized field
        "nul@example.test,N\x00ul,,\n"  # 10 NUL byte
        '"quoted@example.test","Ann, ""Q""","two\nlines",a;b\n'  # 11-12 good, quoted newline
        "zoe@example.test,Zoë,日本 😀,\n"  # 13 good, non-ASCII
        "\n"  # 14 blank: skipped
        "bad@localhost,Local,,\n"  # 15 invalid address
        "last@example.test,Last,,vip"  # 16 good, no final newline
    ).encode()
)

BAD_ROWS = {
    3: "not a valid email address",
    4: "no email address",
    5: "duplicate of row 2 (the first one is imported)",
    6: "expected 4 fields, found 2",
    7: "expected 4 fields, found 5",
    8: "the row is not UTF-8 text",
    9: f"field 3 is over {csv_columns.MAX_FIELD} characters",
    10: "the row contains a NUL byte",
    15: "not a valid email address",
}


async def _upload_in_pieces(client, admin, body: bytes, size: int) -> int:  # type: ignore[no-untyped-def]
    async def pieces():  # cut anywhere: mid-record, mid-quote, mid-UTF-8 sequence
        for i in range(0, len(body), size):
            yield body[i : i + size]

    r = await client.post(
        "/v1/contacts/imports", content=pieces(), headers={**admin, "Content-Type": CSV}
    )
    assert r.status_code == 202, r.text
    return int(r.json()["id"])


@pytest.mark.parametrize("piece", [len(BAD_ROWS_CSV), 1, 7, 64])
async def test_every_bad_row_is_reported_and_every_good_row_imported(
    client, admin, sessionmaker, engine, piece
):
    await client.put(
        "/v1/contacts/other@example.test",
        headers=admin,
        json={"attributes": {"x": 1}, "tags": ["old"]},
    )
    before = await contact(client, admin, "other@example.test")
    import_id = await _upload_in_pieces(client, admin, BAD_ROWS_CSV, piece)
    assert await import_merge.run_import(sessionmaker, import_id, chunk_rows=2) == "completed"
    report = (await client.get(f"/v1/contacts/imports/{import_id}", headers=admin)).json()

    reasons = {e["row"]: e["reason"] for e in report["errors"]}
    assert set(reasons) == set(BAD_ROWS)
    for row, reason in BAD_ROWS.items():
        assert reasons[row].startswith(reason), (row, reasons[row])
    emails = {e["row"]: e["email"] for e in report["errors"]}
    assert emails[5] == "keep@example.test" and emails[8] == "latin@example.test"
    assert (report["total_rows"], report["created"], report["updated"], report["rejected"]) == (
        13,
        4,
        0,
        9,
    )

    assert (await contact(client, admin, "keep@example.test"))["attributes"] == {
        "first_name": "Kim",
        "note": "plain",
    }
    quoted = await contact(client, admin, "quoted@example.test")
    assert quoted["attributes"] == {"first_name": 'Ann, "Q"', "note": "two\nlines"}
    assert quoted["tags"] == ["a", "b"]
    assert (await contact(client, admin, "zoe@example.test"))["attributes"] == {
        "first_name": "Zoë",
        "note": "日本 😀",
    }
    assert (await contact(client, admin, "last@example.test"))["tags"] == ["vip"]
    # nothing else changed: no bad row's contact, the unrelated contact as it was
    assert await count(engine, "SELECT count(*) FROM contacts") == 5
    assert await contact(client, admin, "other@example.test") == before
    assert await count(engine, "SELECT count(*) FROM contact_import_rows") == 0


async def test_a_tag_query_parameter_tags_every_imported_contact(client, admin, sessionmaker):
    r = await client.post(
        "/v1/contacts/imports?tag=fair&tag=2026",
        headers={**admin, "Content-Type": CSV},
        content=b"email,tags\na@example.test,x\nb@example.test,\n",
    )
    import_id = r.json()["id"]
    assert await import_merge.run_import(sessionmaker, import_id) == "completed"
    assert (await contact(client, admin, "a@example.test"))["tags"] == ["2026", "fair", "x"]
    assert (await contact(client, admin, "b@example.test"))["tags"] == ["2026", "fair"]


async def test_progress_is_visible_while_the_import_runs(client, admin, sessionmaker):
    body = "email\n" + "".join(f"p{i}@example.test\n" for i in range(10))
    import_id = (await upload(client, admin, body)).json()["id"]
    seen: list[tuple[str, int]] = []

    async def look(_: int) -> None:
        r = await client.get(f"/v1/contacts/imports/{import_id}", headers=admin)
        seen.append((r.json()["status"], r.json()["created"]))

    pending: list[asyncio.Task[None]] = []
    assert (
        await import_merge.run_import(
            sessionmaker,
            import_id,
            chunk_rows=3,
            on_chunk=lambda n: pending.append(asyncio.ensure_future(look(n))),
        )
        == "completed"
    )
    await asyncio.gather(*pending)
    report = (await client.get(f"/v1/contacts/imports/{import_id}", headers=admin)).json()
    assert report["total_rows"] == 10 and report["created"] == 10
    assert any(status == "running" and 0 < created < 10 for status, created in seen), seen


# a field: an address, a tags cell, a status or odd characters, often padded with white space
plain_field = st.tuples(
    st.sampled_from(["", "", " ", "\t", "\xa0", "\x0b"]),
    st.one_of(
        st.sampled_from(["a@b.test", "X@Y.TEST", "", "n", "c;d", " c ; d ;", "unsubscribed"]),
        st.text(alphabet="ab@.x ;-_\t\x0b\xa0é", max_size=6),
    ),
    st.sampled_from(["", "", " ", "\xa0", "\t"]),
).map("".join)
plain_lines = st.lists(
    st.one_of(
        st.lists(plain_field, max_size=5).map(",".join),
        st.tuples(
            st.sampled_from(["", " ", "\xa0"]),
            st.sampled_from(["a@b.test", "X@Y.TEST"]),
            st.sampled_from(["", " ", "\t"]),
            st.lists(plain_field, max_size=3),
        ).map(lambda t: ",".join([t[0] + t[1] + t[2], *t[3]])),
        st.lists(
            st.sampled_from([*"ab@.x ,;-_\t", "a@b.test", "X@Y.TEST", "c@d.test,N,t"]),
            max_size=12,
        ).map("".join),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@example(
    lines=["a@b.test,x ,t ", "b@b.test, y,\xa0u;v", "c@b.test,z,"] * 3,
    crlf=False,
    piece=20,
    final_newline=True,
    header="email,name,tags",
    extra=(),
)
@given(
    lines=plain_lines,
    crlf=st.booleans(),
    piece=st.integers(1, 200),
    final_newline=st.booleans(),
    header=st.sampled_from(["email,name,tags", "name,email", "email", "tags,email,status"]),
    extra=st.sampled_from([(), ("x",), ("b", "a")]),
)
def test_plain_stretches_parse_as_the_csv_reader_does(
    lines, crlf, piece, final_newline, header, extra
):
    end = "\r\n" if crlf else "\n"
    body = (header + end + end.join(lines) + (end if final_newline else "")).encode()

    def parse(fast: bool) -> tuple:
        upload = importer.Upload(fast=fast, extra_tags=frozenset(extra))
        records = [
            r
            for i in range(0, len(body), piece)
            for batch in upload.feed(body[i : i + piece])
            for r in batch
        ]
        records += upload.close()
        return records, upload.errors, upload.read, upload.rejected

    assert parse(True) == parse(False)


async def test_a_status_column_changes_status_and_is_recorded(client, admin, sessionmaker, engine):
    await client.put("/v1/contacts/old@example.test", headers=admin, json={})
    report = await run(
        client,
        admin,
        sessionmaker,
        "email,status,city\n"
        "old@example.test,Unsubscribed,Oslo\n"
        "new@example.test,unsubscribed,\n"
        "plain@example.test,,\n"
        "odd@example.test,maybe,\n",
    )
    assert (report["created"], report["updated"], report["rejected"]) == (2, 1, 1)
    assert report["errors"][0]["reason"].startswith("status must be")
    old = await contact(client, admin, "old@example.test")
    assert old["status"] == "unsubscribed" and old["attributes"] == {"city": "Oslo"}
    assert (await contact(client, admin, "new@example.test"))["status"] == "unsubscribed"
    assert (await contact(client, admin, "plain@example.test"))["status"] == "subscribed"
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT c.email, s.status, s.source FROM contact_status_changes s"
                    " JOIN contacts c ON c.id = s.contact_id ORDER BY c.email"
                )
            )
        ).all()
    assert rows == [
        ("new@example.test", "unsubscribed", "import"),
        ("old@example.test", "unsubscribed", "import"),
    ]
    # the same file again changes nothing and records nothing
    await run(client, admin, sessionmaker, "email,status\nold@example.test,unsubscribed\n")
    assert await count(engine, "SELECT count(*) FROM contact_status_changes") == 2


async def test_new_contacts_created_unsubscribed_are_recorded(client, admin, sessionmaker, engine):
    # none of the addresses is a contact yet: the fresh path (a plain INSERT) records them
    body = "email,status\nn1@x.test,unsubscribed\nn2@x.test,\nn3@x.test,subscribed\n"
    report = await run(client, admin, sessionmaker, body, chunk_rows=2)
    assert (report["created"], report["updated"], report["rejected"]) == (3, 0, 0)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT c.email, c.status, s.status, s.source FROM contacts c"
                    " LEFT JOIN contact_status_changes s ON s.contact_id = c.id ORDER BY c.email"
                )
            )
        ).all()
    assert rows == [
        ("n1@x.test", "unsubscribed", "unsubscribed", "import"),
        ("n2@x.test", "subscribed", None, None),
        ("n3@x.test", "subscribed", None, None),
    ]
