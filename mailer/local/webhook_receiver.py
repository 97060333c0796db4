"""A small local receiver of outgoing webhooks, for ``mailer dev``, the demo and the bench.

``python -m mailer.local.webhook_receiver --port 8025`` answers every POST with 204 and
prints one line per event (its ``webhook-id``, type and, with ``--secret``, whether its
Standard Webhooks signature checks out). ``--quiet`` only counts (the bench);
``--blackhole`` accepts connections and never answers (a dead endpoint, for the bench).

A plain asyncio protocol (HTTP/1.1 keep-alive, Content-Length bodies): it costs the bench's
deliverer as little CPU as a receiver can.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import signal
import sys
import time
from typing import Any

from mailer.webhook_out.signing import sign

ANSWER = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"
MAX_REQUEST = 1 << 20


def _check(secret: str | None, headers: dict[str, str], body: bytes) -> str:
    if not secret:
        return ""
    try:
        expected = sign(secret, headers["webhook-id"], int(headers["webhook-timestamp"]), body)
    except (KeyError, ValueError):
        return " UNSIGNED"
    given = headers.get("webhook-signature", "").split(" ")
    return (
        " signature ok"
        if any(hmac.compare_digest(expected, g) for g in given)
        else " BAD SIGNATURE"
    )


class Receiver(asyncio.Protocol):
    count = 0
    started = 0.0

    def __init__(self, quiet: bool, blackhole: bool, secret: str | None) -> None:
        self.quiet = quiet
        self.blackhole = blackhole
        self.secret = secret
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self.blackhole:
            return  # never answers
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_REQUEST and self.transport is not None:
                    self.transport.close()
                return
            head = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
            headers = {}
            for line in head[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0"))
            if len(self.buffer) < end + 4 + length:
                return
            body = bytes(self.buffer[end + 4 : end + 4 + length])
            del self.buffer[: end + 4 + length]
            self._received(headers, body)
            if self.transport is not None:
                self.transport.write(ANSWER)

    def _received(self, headers: dict[str, str], body: bytes) -> None:
        Receiver.count += 1
        if not Receiver.started:
            Receiver.started = time.monotonic()
        if self.quiet:
            return
        try:
            kind = json.loads(body).get("type", "?")
        except ValueError:
            kind = "(not JSON)"
        verdict = _check(self.secret, headers, body)
        print(f"webhook {headers.get('webhook-id', '?')} {kind}{verdict}", flush=True)


async def serve(host: str, port: int, quiet: bool, blackhole: bool, secret: str | None) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Receiver(quiet, blackhole, secret), host, port, backlog=1024
    )
    print(f"webhook receiver on http://{host}:{port}/", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    if quiet:
        print(f"received {Receiver.count}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--blackhole", action="store_true")
    parser.add_argument("--secret", default=None, help="whsec_… to check signatures with")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.quiet, args.blackhole, args.secret))


if __name__ == "__main__":
    main(sys.argv[1:])
