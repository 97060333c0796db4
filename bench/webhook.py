"""Benchmark: SNS notifications into one API process, and events applied by one worker.

Targets: ≥ 1,000 signed notifications/s into one API process (uvicorn, real HTTP)
with p99 ≤ 50 ms; ≥ 2,000 events/s applied by one events worker.

1. ingest: ``mailer api`` (uvicorn) in its own process with a local signing certificate in
   ``MAILER_SNS_CERT_DIR``; ``--notifications`` signed SES event notifications (mostly
   Delivery, some Open, Click, Bounce, Complaint, for messages that exist) are POSTed by a
   raw asyncio client on uvloop (no client library, so the load generator takes little of
   the CPU; its CPU per notification is printed next to the API's).
   Every one is verified (RSA SHA256) and stored. Half go over ``--connections`` keep-alive
   connections as fast as they are answered (the maximum rate); the other half are offered
   at ``--rate`` per second whatever the answers (as SNS posts), and their p50/p99 latency
   is measured from each request's scheduled time.
2. apply: the events worker's drain (``mailer.webhook.tasks.drain``, what the events job
   runs) over everything stored in step 1, timed in this process on asyncio's own loop (as
   the arq worker runs): events/s.

    python bench/webhook.py [--notifications 20000] [--connections 32]
        [--database-url postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_webhook]
        [--redis-url redis://127.0.0.1:6379/3]

The database is migrated from scratch (use one of its own); the Redis database is emptied.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench.common import Row, print_table, process_cpu_seconds, run  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.db import create_engine, create_sessionmaker  # noqa: E402
from mailer.local.simulator import DEFAULT_TOPIC, Signer, ensure_signing_files  # noqa: E402
from mailer.secrets import new_key  # noqa: E402
from mailer.webhook.tasks import drain_notifications  # noqa: E402
from tests.fixtures.api import free_port  # noqa: E402
from tests.fixtures.database import migrate  # noqa: E402

INGEST_TARGET = 1000.0
P99_TARGET_MS = 50.0
APPLY_TARGET = 2000.0
MIX = [("Delivery", 0.80), ("Open", 0.08), ("Click", 0.05), ("Bounce", 0.04), ("Complaint", 0.03)]
# --mix engagement: half opens and clicks, each recomputing its message's engagement
MIXES = {
    "default": MIX,
    "engagement": [
        ("Delivery", 0.45),
        ("Open", 0.30),
        ("Click", 0.20),
        ("Bounce", 0.03),
        ("Complaint", 0.02),
    ],
}


async def seed(settings: Settings, count: int) -> list[str]:
    """A campaign with ``count`` sent messages; their SES message ids."""
    engine = create_engine(settings)
    ses_ids = [f"0100bench-{i:08d}" for i in range(count)]
    async with engine.begin() as conn:
        await conn.execute(text("INSERT INTO templates (name) VALUES ('bench') RETURNING id"))
        template_id = (await conn.execute(text("SELECT max(id) FROM templates"))).scalar_one()
        await conn.execute(
            text(
                "INSERT INTO template_versions (template_id, version, subject, html)"
                " VALUES (:t, 1, 's', 'h')"
            ),
            {"t": template_id},
        )
        version_id = (
            await conn.execute(text("SELECT max(id) FROM template_versions"))
        ).scalar_one()
        await conn.execute(
            text("INSERT INTO segments (name, filter) VALUES ('all', '{\"all\": []}')")
        )
        segment_id = (await conn.execute(text("SELECT max(id) FROM segments"))).scalar_one()
        campaign_id = (
            await conn.execute(
                text(
                    """INSERT INTO campaigns (name, template_id, template_version_id, segment_id,
                                      from_address, status)
               VALUES ('bench', :t, :v, :s, 'news@example.com', 'completed') RETURNING id"""
                ),
                {"t": template_id, "v": version_id, "s": segment_id},
            )
        ).scalar_one()
        await conn.execute(
            text("INSERT INTO campaign_stats (campaign_id, recipients, sent) VALUES (:c, :n, :n)"),
            {"c": campaign_id, "n": count},
        )
        await conn.execute(
            text(
                """INSERT INTO contacts (email)
               SELECT 'reader' || i || '@example.com' FROM generate_series(0, :n - 1) AS i"""
            ),
            {"n": count},
        )
        await conn.execute(
            text(
                """INSERT INTO messages (campaign_id, contact_id, email, mail_class, status, region,
                                     ses_message_id, sent_at)
               SELECT :c, c.id, c.email, 'marketing', 'sent', 'us-east-1',
                      '0100bench-' || lpad((c.id - 1)::text, 8, '0'), now()
                 FROM contacts c"""
            ),
            {"c": campaign_id},
        )
    await engine.dispose()
    return ses_ids


def notifications(
    signer: Signer, ses_ids: list[str], count: int, mix: list[tuple[str, float]] = MIX
) -> list[bytes]:
    """``count`` signed notifications, one event each, for the seeded messages."""
    from tests.fixtures.sns import ses_event

    rng = random.Random(7)
    kinds = [k for k, _ in mix]
    weights = [w for _, w in mix]
    out = []
    for i in range(count):
        kind = rng.choices(kinds, weights)[0]
        ses_id = ses_ids[i % len(ses_ids)]
        email = f"reader{i % len(ses_ids)}@example.com"
        event = ses_event(kind, ses_id, [email])
        out.append(signer.notification(event))
    return out


def request_bytes(host: str, body: bytes) -> bytes:
    head = (
        f"POST /webhooks/sns HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: text/plain; charset=UTF-8\r\n"
        "x-amz-sns-message-type: Notification\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def post_all(
    port: int, bodies: list[bytes], connections: int
) -> tuple[float, list[float], dict[int, int]]:
    """(seconds, latencies in ms, answers by status) of POSTing every body once."""
    host = f"127.0.0.1:{port}"
    requests = [request_bytes(host, b) for b in bodies]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while next_index < len(requests):
            request = requests[next_index]
            next_index += 1
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            latencies.append((time.perf_counter() - started) * 1000)
            status = int(head[9:12])
            statuses[status] = statuses.get(status, 0) + 1
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return time.perf_counter() - started, latencies, statuses


async def post_paced(
    port: int, bodies: list[bytes], rate: float, max_connections: int = 64
) -> tuple[float, list[float], dict[int, int]]:
    """POST at a fixed offered ``rate`` (as SNS does: it does not wait for us); latency is
    measured from each request's scheduled time, so waiting for a free connection counts."""
    host = f"127.0.0.1:{port}"
    requests = [request_bytes(host, b) for b in bodies]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    opened = 0

    async def one(request: bytes, scheduled: float) -> None:
        nonlocal opened
        if idle.empty() and opened < max_connections:
            opened += 1
            idle.put_nowait(await asyncio.open_connection("127.0.0.1", port))
        reader, writer = await idle.get()
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        await reader.readexactly(length)
        latencies.append((time.perf_counter() - scheduled) * 1000)
        status = int(head[9:12])
        statuses[status] = statuses.get(status, 0) + 1
        idle.put_nowait((reader, writer))

    tasks = []
    started = time.perf_counter()
    for i, request in enumerate(requests):
        scheduled = started + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, scheduled)))
    await asyncio.gather(*tasks)
    seconds = time.perf_counter() - started
    while not idle.empty():
        idle.get_nowait()[1].close()
    return seconds, latencies, statuses


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def start_api(settings: Settings, cert_dir: Path, port: int, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MAILER_DATABASE_URL": settings.database_url,
        "MAILER_REDIS_URL": settings.redis_url,
        "MAILER_SECRET_KEY": new_key(),
        "MAILER_SNS_CERT_DIR": str(cert_dir),
        "MAILER_SNS_TOPIC_ARNS": DEFAULT_TOPIC,
        "MAILER_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(  # noqa: S603 - our own console script
        [sys.executable, "-m", "mailer.cli", "api", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the API did not start: {log.read_text()[-2000:]}")


@dataclass
class Ingest:
    rate: float
    p50: float
    p99: float
    api_cpu: float  # seconds, closed-loop half
    client_cpu: float
    half: int
    paced_rate: float
    paced_p50: float
    paced_p99: float
    paced_api_cpu: float  # seconds, open-loop half
    paced_client_cpu: float
    paced: int
    statuses: dict[int, int]


async def ingest(args: argparse.Namespace, settings: Settings) -> Ingest:
    """Step 1, on uvloop: the load generator shares the machine's cores with the API, so it
    should take as little of them as it can (its CPU is reported too)."""
    from redis.asyncio import Redis

    redis = Redis.from_url(settings.redis_url)
    await redis.flushdb()
    await redis.aclose()
    work = Path(tempfile.mkdtemp(prefix="bench-webhook-"))
    signer = Signer(ensure_signing_files(work / "sns"))
    ses_ids = await seed(settings, args.messages)
    print(f"signing {args.notifications:,} notifications …", flush=True)
    bodies = notifications(signer, ses_ids, args.notifications, MIXES[args.mix])
    warm = notifications(signer, ses_ids, 200)

    port = free_port()
    api = start_api(settings, work / "sns" / "certs", port, work / "api.log")
    try:
        await post_all(port, warm, 8)  # connections, caches, prepared statements
        half = len(bodies) // 2
        cpu_before, client_before = process_cpu_seconds(api.pid), time.process_time()
        seconds, latencies, statuses = await post_all(port, bodies[:half], args.connections)
        cpu_mid, client_mid = process_cpu_seconds(api.pid), time.process_time()
        paced_s, paced_lat, paced_statuses = await post_paced(port, bodies[half:], args.rate)
        cpu_after, client_after = process_cpu_seconds(api.pid), time.process_time()
    finally:
        api.terminate()
        api.wait(10)
    for status, n in paced_statuses.items():
        statuses[status] = statuses.get(status, 0) + n
    return Ingest(
        rate=half / seconds,
        p50=percentile(latencies, 0.50),
        p99=percentile(latencies, 0.99),
        api_cpu=cpu_mid - cpu_before,
        client_cpu=client_mid - client_before,
        half=half,
        paced_rate=(len(bodies) - half) / paced_s,
        paced_p50=percentile(paced_lat, 0.50),
        paced_p99=percentile(paced_lat, 0.99),
        paced_api_cpu=cpu_after - cpu_mid,
        paced_client_cpu=client_after - client_mid,
        paced=len(bodies) - half,
        statuses=statuses,
    )


async def main_async(args: argparse.Namespace, got: Ingest) -> None:
    """Step 2 and the figures, on asyncio's own loop (what the arq events worker runs on)."""
    settings = Settings(database_url=args.database_url, redis_url=args.redis_url)
    rate, p50, p99, statuses = got.rate, got.p50, got.p99, got.statuses
    half, api_cpu = got.half, got.api_cpu
    paced_rate, paced_p50, paced_p99 = got.paced_rate, got.paced_p50, got.paced_p99
    total = got.half + got.paced

    engine = create_engine(settings)
    sessionmaker = create_sessionmaker(engine)
    started, cpu_started = time.perf_counter(), time.process_time()
    report = await drain_notifications(sessionmaker, args.batch)
    apply_seconds = time.perf_counter() - started
    apply_cpu = time.process_time() - cpu_started
    async with engine.connect() as conn:
        left = (
            await conn.execute(
                text("SELECT count(*) FROM sns_notifications WHERE processed_at IS NULL")
            )
        ).scalar_one()
        stats = dict(
            (
                await conn.execute(
                    text(
                        "SELECT delivered, opened, clicked, bounced, complained FROM campaign_stats"
                    )
                )
            )
            .one()
            ._mapping
        )
    await engine.dispose()
    events_rate = report.events / apply_seconds if apply_seconds else 0.0

    load = os.getloadavg()
    print_table(
        "SNS webhook ingest (one uvicorn API process, real HTTP)",
        [
            Row("notifications", total, "", f"answers {statuses}"),
            Row(
                "max ingest rate",
                rate,
                "/s",
                f"{args.connections} connections, closed loop; "
                f"target ≥ {INGEST_TARGET:,.0f}/s; ratio {rate / INGEST_TARGET:.2f}",
            ),
            Row("  latency p50 / p99", p50, "ms", f"p99 {p99:.1f} ms (at full load)"),
            Row(
                "  API CPU per notification",
                api_cpu / half * 1e6,
                "us",
                f"one core's ceiling {half / api_cpu if api_cpu else 0:,.0f}/s",
            ),
            Row(
                "  bench client CPU per notification",
                got.client_cpu / half * 1e6,
                "us",
                "the load generator, on the same cores",
            ),
            Row(f"offered {args.rate:,.0f}/s", paced_rate, "/s", "open loop, as SNS posts"),
            Row("  latency p50", paced_p50, "ms"),
            Row(
                "  latency p99",
                paced_p99,
                "ms",
                f"target ≤ {P99_TARGET_MS:.0f} ms; ratio "
                f"{P99_TARGET_MS / paced_p99 if paced_p99 else 0:.2f}",
            ),
            Row(
                "  API CPU per notification",
                got.paced_api_cpu / got.paced * 1e6,
                "us",
                f"bench client {got.paced_client_cpu / got.paced * 1e6:,.0f} us",
            ),
        ],
    )
    print_table(
        "events applied (the events worker's drain, one process)",
        [
            Row("notifications", report.notifications, "", f"{left} left unprocessed"),
            Row(
                "events",
                report.events,
                "",
                f"stored {report.stored}, unmatched {report.unmatched}, errors {report.errors}",
            ),
            Row(
                "apply rate",
                events_rate,
                "/s",
                f"target ≥ {APPLY_TARGET:,.0f}/s; ratio {events_rate / APPLY_TARGET:.2f}",
            ),
            Row(
                "  worker CPU per event",
                apply_cpu / max(report.events, 1) * 1e6,
                "us",
                "PostgreSQL's share not counted",
            ),
            Row("campaign stats", None, "", json.dumps(stats)),
        ],
    )
    print(
        f"\nload average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
        f"on {os.cpu_count()} CPUs (figures are CPU-bound; a busy machine lowers them)"
    )
    ok = (
        rate >= INGEST_TARGET
        and paced_p99 <= P99_TARGET_MS
        and paced_rate >= 0.98 * args.rate
        and events_rate >= APPLY_TARGET
        and statuses == {200: total}
        and left == 0
    )
    print("targets met" if ok else "targets NOT met")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notifications", type=int, default=20_000)
    parser.add_argument(
        "--messages", type=int, default=20_000, help="sent messages the events are about"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=32,
        help="connections of the closed-loop (maximum rate) half",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=INGEST_TARGET,
        help="offered rate of the open-loop (latency) half",
    )
    parser.add_argument("--batch", type=int, default=500, help="events worker batch size")
    parser.add_argument("--mix", choices=sorted(MIXES), default="default", help="event types")
    parser.add_argument(
        "--database-url", default="postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_webhook"
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/3")
    args = parser.parse_args()
    migrate(args.database_url)  # runs its own event loop
    settings = Settings(database_url=args.database_url, redis_url=args.redis_url)
    got = run(ingest(args, settings), use_uvloop=True)
    asyncio.run(main_async(args, got))


if __name__ == "__main__":
    main()
