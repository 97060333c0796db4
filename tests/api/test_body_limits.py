"""Request bodies against a real server process (``mailer api``, uvicorn): no route reads a
body before its caller is known, none buffers more than its own limit, and a body nobody
will read is not read (the server closes the connection instead of draining it).

The client here writes the body itself, a megabyte at a time, and counts what the server
let it write: a server that stops reading stops the writes once the sockets' buffers are
full (a few MB on loopback), one that drains the body takes all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

import httpx
import psutil
import pytest

from mailer.config import Settings
from tests.fixtures.api import ApiProcess
from tests.fixtures.workers import worker_env

MB = 1 << 20
BODY = 150 * MB
# what the server may take in before it stops reading: its socket buffers, the client's,
# uvicorn's own 64 KB, and the limit of the route (1 MB for JSON); far below BODY
READ_AT_MOST = 40 * MB


@pytest.fixture(scope="module")
def api(
    settings: Settings, engine: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, psutil.Process]]:
    """``mailer api`` on a free port against the test database, one for the module (each
    test measures its own growth of the process's memory): (base URL, its process)."""
    env = worker_env(settings, "http://127.0.0.1:9", MAILER_MAX_BODY_BYTES=str(MB))
    server = ApiProcess(env, tmp_path_factory.mktemp("body-limits") / "api.log")
    try:
        yield server.url, psutil.Process(server.process.pid)
    finally:
        server.stop()


async def push(
    base: str, method: str, path: str, headers: dict[str, str], size: int = BODY
) -> tuple[int | None, int]:
    """Send a chunked body of ``size`` bytes, a megabyte at a time, while reading the
    answer: (its status, or None when the connection was reset before it could be read;
    the bytes the server let this client write)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Transfer-Encoding: chunked"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    piece = b"{" + b" " * (MB - 1) if "json" in str(headers).lower() else b"x" * MB

    async def answer() -> int | None:
        try:
            status_line = await reader.readline()
        except ConnectionError:
            return None
        return int(status_line.split()[1]) if status_line else None

    reading = asyncio.ensure_future(answer())
    written = 0
    try:
        while written < size and not writer.is_closing():
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            # the answer, or the server's closing the connection, ends the writing: once
            # it stops reading, drain() waits until the close
            drained = asyncio.ensure_future(writer.drain())
            await asyncio.wait([drained, reading], return_when=asyncio.FIRST_COMPLETED)
            if not drained.done():
                await asyncio.wait([drained], timeout=30)  # the close comes with the answer
                if not drained.done():
                    drained.cancel()
                    break
            drained.result()
            written += len(piece)
        else:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass
    status = await asyncio.wait_for(reading, 60)
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
    return status, written


@pytest.mark.parametrize(
    "path", ["/v1/contacts/imports", "/v1/contacts/importsX", "/v1/contacts/imports/1"]
)
@pytest.mark.parametrize("content_type", ["text/csv", "application/json"])
async def test_an_unauthenticated_body_to_an_import_path_is_refused_unread(
    api: tuple[str, psutil.Process], path: str, content_type: str
) -> None:
    base, process = api
    rss = process.memory_info().rss
    status, written = await push(base, "POST", path, {"Content-Type": content_type})
    assert status in (401, None), status
    assert written < READ_AT_MOST, f"the server read {written / MB:.0f} MB of a refused body"
    assert process.memory_info().rss - rss < 50 * MB
    # and the refusal itself, as a client that sends a small body sees it
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post(path, content=b"email\n", headers={"Content-Type": content_type})
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


async def test_an_oversized_json_body_is_a_413_unbuffered(
    api: tuple[str, psutil.Process], admin_key: str
) -> None:
    base, process = api
    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "application/json"}
    rss = process.memory_info().rss
    for path in ("/v1/contacts/ada@example.test", "/v1/messages"):
        method = "PUT" if "contacts" in path else "POST"
        status, written = await push(base, method, path, headers)
        assert status in (413, None), status
        assert written < READ_AT_MOST, f"the server read {written / MB:.0f} MB"
    assert process.memory_info().rss - rss < 50 * MB
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.put(
            "/v1/contacts/ada@example.test", content=b" " * (MB + 1), headers=headers
        )
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


async def test_a_body_no_route_reads_is_not_drained(
    api: tuple[str, psutil.Process], admin_key: str
) -> None:
    """An authenticated POST to a path without a POST route (405): answered and closed."""
    base, _ = api
    headers = {"Authorization": f"Bearer {admin_key}", "Content-Type": "text/csv"}
    status, written = await push(base, "POST", "/v1/contacts/imports/1", headers)
    assert status in (405, None), status
    assert written < READ_AT_MOST
