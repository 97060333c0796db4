"""CSV imports at their edges: a stray quote costs its own row and no more (in rows and in
time), the event loop keeps answering while a file is parsed, and a slow upload holds no
database connection."""

from __future__ import annotations

import asyncio
import time

from mailer.contact import csv_scan, import_merge, importer
from tests.contact.test_imports import CSV, contact, upload

ROWS = 100_000
STRAY_AT = (1_000, 40_000, 80_000)  # lines of the file (header = 1), over 1 MB apart


def _file(stray: bool) -> bytes:
    lines = [f"user{i}@example.test,Name{i},Oslo" for i in range(ROWS)]
    if stray:
        for line in STRAY_AT:
            lines[line - 2] = lines[line - 2].replace(",Name", ',"Name')  # never closed
    return ("email,name,city\n" + "\n".join(lines) + "\n").encode()


async def _report(client, admin, sessionmaker, import_id: int) -> dict:  # type: ignore[no-untyped-def]
    assert await import_merge.run_import(sessionmaker, import_id) == "completed"
    r = await client.get(f"/v1/contacts/imports/{import_id}", headers=admin)
    return r.json()  # type: ignore[no-any-return]


async def test_a_stray_quote_is_answered_as_fast_as_a_clean_file_while_healthz_answers(
    client, admin, sessionmaker
):
    async def timed(body: bytes) -> tuple[float, int, int]:
        """(seconds to the answer, its import id, /healthz answers given meanwhile)"""
        done = asyncio.Event()
        answered = 0

        async def healthz() -> None:
            nonlocal answered
            while not done.is_set():
                if (await client.get("/healthz")).status_code == 200 and not done.is_set():
                    answered += 1
                await asyncio.sleep(0.01)  # a request through ASGITransport never yields

        polling = asyncio.ensure_future(healthz())
        started = time.perf_counter()
        r = await upload(client, admin, body)
        seconds = time.perf_counter() - started
        done.set()
        await polling
        assert r.status_code == 202, r.text
        return seconds, r.json()["id"], answered

    clean_seconds, _, _ = await timed(_file(stray=False))
    stray_seconds, import_id, answered = await timed(_file(stray=True))
    assert answered > 0  # the loop served /healthz while the file was parsed
    # the old boundary search walked back over a growing buffer: ~1 s a stray quote here
    assert stray_seconds < 2.5 * clean_seconds, (stray_seconds, clean_seconds)
    report = await _report(client, admin, sessionmaker, import_id)
    assert [e["row"] for e in report["errors"]] == list(STRAY_AT)
    assert {e["reason"] for e in report["errors"]} == {"a quote opened in this row is not closed"}
    assert (report["total_rows"], report["rejected"]) == (ROWS, len(STRAY_AT))
    # every row but those: the rows after a stray quote are not swallowed by it
    assert report["updated"] + report["created"] == ROWS - len(STRAY_AT)


def test_the_boundary_scan_reads_each_byte_once() -> None:
    body = _file(stray=True)
    upload = importer.Upload()
    for i in range(0, len(body), 4096):
        for _ in upload.feed(body[i : i + 4096]):
            pass
    upload.close()
    # each byte once, but for the lines after a stray quote: read again from its next line,
    # what was read past the quote before it was found stray (its limit, a slice more)
    again = csv_scan._MAX_QUOTED_BYTES + importer._SLICE
    assert upload.scanned <= len(body) + len(STRAY_AT) * again
    assert upload.rejected == len(STRAY_AT)


async def test_a_quote_left_open_at_the_end_costs_its_own_row(client, admin, sessionmaker):
    body = (
        "email,name\n"
        "a@example.test,A\n"
        'b@example.test,"B\n'  # 3: opened, never closed
        "c@example.test,C\n"
        "d@example.test,D\n"
    )
    r = await upload(client, admin, body)
    report = await _report(client, admin, sessionmaker, r.json()["id"])
    assert [(e["row"], e["email"]) for e in report["errors"]] == [(3, "b@example.test")]
    assert (report["total_rows"], report["created"], report["rejected"]) == (4, 3, 1)
    assert (await contact(client, admin, "d@example.test"))["attributes"] == {"name": "D"}


async def test_a_row_a_quoted_field_ran_over_names_the_lines(client, admin, sessionmaker):
    body = (
        "email,name\n"
        "a@example.test,A\n"
        '"b@example.test,B\n'  # 3: a quote opened here ...
        "c@example.test,C\n"
        'd@example.test",D\n'  # 5: ... and closed here: lines 3-5 are one row
        "e@example.test,E\n"
    )
    r = await upload(client, admin, body)
    report = await _report(client, admin, sessionmaker, r.json()["id"])
    [error] = report["errors"]
    assert error["row"] == 3
    assert error["reason"].endswith("(a quoted field runs from line 3 to line 5)")
    assert (report["total_rows"], report["created"], report["rejected"]) == (3, 2, 1)


async def test_a_slow_upload_holds_no_database_connection(app, client, admin, sessionmaker):
    asked_again, go_on = asyncio.Event(), asyncio.Event()

    async def slow():  # type: ignore[no-untyped-def]
        yield b"email\nfirst@example.test\n"
        asked_again.set()  # the server has taken the first piece and waits for more
        await go_on.wait()
        yield b"last@example.test\n"

    posting = asyncio.ensure_future(
        client.post("/v1/contacts/imports", content=slow(), headers={**admin, "Content-Type": CSV})
    )
    await asked_again.wait()
    held = app.state.engine.pool.checkedout()
    go_on.set()
    r = await posting
    assert r.status_code == 202, r.text
    assert held == 0
    report = await _report(client, admin, sessionmaker, r.json()["id"])
    assert report["created"] == 2
