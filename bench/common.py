"""Shared benchmark helpers: the stand-in, the SES client, timing and the results table."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
from aiobotocore.config import AioConfig  # noqa: E402
from aiobotocore.session import get_session  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from mailer.sending.transport import client_config  # noqa: E402
from tests.fixtures.standin import StandinProcess, start_standin  # noqa: E402

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


# -- the stand-in ------------------------------------------------------------------------


@contextmanager
def standin(
    rates: dict[str, float] | None = None,
    latency_ms: float = 0.0,
    record: str = "none",
    cpu: int | None = None,
    port: int | None = None,
) -> Iterator[StandinProcess]:
    """A stand-in subprocess for one benchmark; ``record="none"`` keeps its memory flat."""
    proc = start_standin(port=port, rates=rates, latency_ms=latency_ms, record=record, cpu=cpu)
    try:
        yield proc
    finally:
        proc.stop()


def process_cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


# -- the SES client, configured as the worker configures it ----------------------------


def ses_client_config(max_in_flight: int, timeout: float = 10.0) -> AioConfig:
    """The worker's aiobotocore config, so the bare loop uses the same client set-up."""
    return client_config(max_in_flight, timeout)


HTML = (
    "<!doctype html><html><body><table role='presentation' width='100%'>"
    + "<tr><td style='font-family:Arial,sans-serif;font-size:16px;color:#333'>"
    + "Hello Reader, here is this week's news. " * 60
    + "</td></tr></table><p><a href='https://example.com/u/TOKEN'>Unsubscribe</a></p>"
    + "</body></html>"
)
TEXT = "Hello Reader, here is this week's news. " * 25


def send_params(i: int) -> dict[str, Any]:
    """A campaign-sized SendEmail (about 4 KB: html, text, unsubscribe headers, tags)."""
    return {
        "FromEmailAddress": "News <news@example.com>",
        "Destination": {"ToAddresses": [f"reader{i}@example.com"]},
        "ReplyToAddresses": ["reply@example.com"],
        "Content": {
            "Simple": {
                "Subject": {"Data": f"Weekly news #{i}", "Charset": "UTF-8"},
                "Body": {
                    "Html": {"Data": HTML, "Charset": "UTF-8"},
                    "Text": {"Data": TEXT, "Charset": "UTF-8"},
                },
                "Headers": [
                    {
                        "Name": "List-Unsubscribe",
                        "Value": "<https://example.com/unsubscribe/TOKEN>, "
                        "<mailto:unsubscribe@example.com?subject=TOKEN>",
                    },
                    {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
                ],
            }
        },
        "EmailTags": [
            {"Name": "mail_class", "Value": "marketing"},
            {"Name": "campaign_id", "Value": "1"},
            {"Name": "message_id", "Value": str(i)},
        ],
        "ConfigurationSetName": "marketing",
    }


@dataclass
class LoopResult:
    calls: int
    seconds: float
    cpu_seconds: float
    errors: Counter[str] = field(default_factory=Counter)

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


def _reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", type(exc).__name__))[:40]


async def run_callers(
    send: Callable[[int], Awaitable[Any]],
    calls: int,
    in_flight: int,
    warmup: int,
    *,
    counted: type[BaseException] | tuple[type[BaseException], ...] = Exception,
    name: Callable[[Any], str] = _reason,
) -> LoopResult:
    """``send(i)`` ``calls`` times from ``in_flight`` concurrent callers, after ``warmup``
    untimed calls (opening the connections); failures of the ``counted`` kinds counted by
    ``name``, any other stops the loop."""
    errors: Counter[str] = Counter()
    next_index = 0

    async def caller(limit: int) -> None:
        nonlocal next_index
        while next_index < limit:
            i = next_index
            next_index += 1
            try:
                await send(i)
            except counted as exc:
                errors[name(exc)] += 1

    await asyncio.gather(*(caller(warmup) for _ in range(in_flight)))
    errors.clear()
    next_index = 0
    cpu_start, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(calls) for _ in range(in_flight)))
    seconds = time.perf_counter() - started
    return LoopResult(calls, seconds, time.process_time() - cpu_start, errors)


async def bare_send_loop(
    url: str, *, calls: int, in_flight: int, region: str = "us-east-1", warmup: int | None = None
) -> LoopResult:
    """SendEmail ``calls`` times with ``in_flight`` concurrent callers through one client.

    Nothing but the client library: the ceiling any worker built on it can reach.
    Warm-up calls (opening the pool's connections) are not timed.
    """
    async with get_session().create_client(
        "sesv2",
        region_name=region,
        endpoint_url=url,
        config=ses_client_config(in_flight),
        **CREDENTIALS,
    ) as client:

        async def send(i: int) -> None:
            await client.send_email(**send_params(i))

        return await run_callers(
            send,
            calls,
            in_flight,
            in_flight * 2 if warmup is None else warmup,
            counted=ClientError,
            name=lambda exc: str(exc.response["Error"]["Code"]),
        )


# -- raw HTTP load, to find the stand-in's own ceiling ---------------------------------


def _raw_send_request(host: str, region: str) -> bytes:
    import json

    body = json.dumps(send_params(0)).encode()
    auth = (
        f"AWS4-HMAC-SHA256 Credential=testing/20260101/{region}/ses/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0"
    )
    head = (
        f"POST /v2/email/outbound-emails HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nAuthorization: {auth}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def raw_http_load(url: str, *, requests: int, connections: int) -> LoopResult:
    """Keep-alive SendEmail requests over ``connections`` sockets, no client library."""
    host_port = url.split("://", 1)[1]
    host, port = host_port.rsplit(":", 1)
    request = _raw_send_request(host_port, "us-east-1")
    remaining = requests
    errors: Counter[str] = Counter()

    async def connection() -> None:
        nonlocal remaining
        reader, writer = await asyncio.open_connection(host, int(port))
        while remaining > 0:
            remaining -= 1
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = head[9:12]
            length = int(head.split(b"Content-Length: ", 1)[1].split(b"\r\n", 1)[0])
            await reader.readexactly(length)
            if status != b"200":
                errors[status.decode()] += 1
        writer.close()

    cpu_start, started = time.process_time(), time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    seconds = time.perf_counter() - started
    return LoopResult(requests, seconds, time.process_time() - cpu_start, errors)


def run(coro: Any, use_uvloop: bool = False) -> Any:
    """Run a coroutine on asyncio's loop (what arq uses by default) or uvloop."""
    if use_uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


def pin_to_cpu(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


# -- results ---------------------------------------------------------------------------


@dataclass
class Row:
    name: str
    value: float | None
    unit: str
    note: str = ""


def format_value(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def print_table(title: str, rows: list[Row]) -> None:
    """A plain, aligned table (easy to paste into a report)."""
    print(f"\n{title}")
    width = max((len(r.name) for r in rows), default=10)
    values = [format_value(r.value) for r in rows]
    vwidth = max((len(v) for v in values), default=5)
    for row, value in zip(rows, values, strict=True):
        line = f"  {row.name:<{width}}  {value:>{vwidth}} {row.unit:<8}"
        print(f"{line}  {row.note}".rstrip())
