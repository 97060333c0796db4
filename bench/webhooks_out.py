"""Benchmark: outgoing webhooks delivered by one deliverer (what a ``webhooks`` worker runs).

Targets (issue 22): ≥ 2,000 deliveries/s from one worker to a local receiver; a dead
endpoint for 10 minutes leaves the other endpoints' latency p99 ≤ 1 s.

1. throughput: ``--events`` events for one endpoint are written to the outbox (one
   ``INSERT … SELECT``), then one :class:`mailer.webhook_out.delivery.Deliverer` on
   asyncio's loop (as the arq worker runs it) delivers them, signed, to
   ``mailer.local.webhook_receiver --quiet`` in a process of its own: deliveries/s, and
   the deliverer's CPU per delivery.
2. dead endpoint: a receiver that accepts connections and never answers (every attempt
   waits the whole 5 s timeout) and ``--live`` live endpoints each get ``--rate`` events a
   second for ``--dead-seconds`` (the issue's figure is 600); the deliverer works all the
   time; the live endpoints' latency (event written → delivered, from the database) p50,
   p99 and max.

The send path with an endpoint subscribed to every event: ``bench/send.py --only worker
--webhook-endpoint`` (its worker ratio, with and without).

    python bench/webhooks_out.py [--events 20000] [--dead-seconds 60] [--rate 200]
        [--database-url postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_webhooks_out]

The database is migrated from scratch (use one of its own).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from bench.common import Row, print_table, process_cpu_seconds  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.db import create_engine, create_sessionmaker  # noqa: E402
from mailer.webhook_out.delivery import Deliverer  # noqa: E402
from mailer.webhook_out.signing import new_secret  # noqa: E402
from tests.fixtures.api import free_port  # noqa: E402
from tests.fixtures.database import migrate  # noqa: E402

THROUGHPUT_TARGET = 2000.0
P99_TARGET_S = 1.0


def start_receiver(*flags: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "mailer.local.webhook_receiver", "--port", str(port), *flags],
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, f"http://127.0.0.1:{port}/hook"
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("receiver did not start")


async def add_endpoint(conn: object, url: str) -> int:
    row = await conn.execute(  # type: ignore[attr-defined]
        text("INSERT INTO webhook_endpoints (url, secret) VALUES (:u, :s) RETURNING id"),
        {"u": url, "s": new_secret()},
    )
    return int(row.scalar_one())


_EVENTS = text(
    """
    INSERT INTO webhook_deliveries (endpoint_id, type, message_id, payload)
    SELECT CAST(:endpoint AS bigint), 'message.delivered', g,
           jsonb_build_object('type', 'message.delivered',
                              'timestamp', to_char(now() AT TIME ZONE 'UTC',
                                                   'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                              'data', jsonb_build_object(
                                  'message_id', g, 'ses_message_id', '0100bench-' || g,
                                  'to', 'reader' || g || '@example.com',
                                  'mail_class', 'transactional', 'campaign_id', NULL,
                                  'region', 'us-east-1', 'tags', '{"flow": "reset"}'::jsonb,
                                  'details', jsonb_build_object('processingTimeMillis', 412)))
      FROM generate_series(CAST(:first AS bigint),
                           CAST(:first AS bigint) + CAST(:n AS bigint) - 1) AS g
    """
)


async def bare_loop(url: str, requests: int, in_flight: int = 200) -> tuple[float, float]:
    """The floor: aiohttp POSTs of a delivery-sized body with ``in_flight`` at once, no
    database, no signing; (requests/s, CPU µs a request) in this process."""
    import aiohttp

    body = b'{"type": "message.delivered", "data": {"message_id": 1}}' * 6
    sem = asyncio.Semaphore(in_flight)
    connector = aiohttp.TCPConnector(limit=in_flight)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one() -> None:
            async with sem, http.post(url, data=body) as response:
                await response.read()

        await asyncio.gather(*(one() for _ in range(200)))  # warm
        cpu0 = process_cpu_seconds(os.getpid())
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        elapsed = time.perf_counter() - started
        cpu = process_cpu_seconds(os.getpid()) - cpu0
    return requests / elapsed, cpu / requests * 1e6


async def throughput(settings: Settings, events: int) -> list[Row]:
    engine = create_engine(settings, pool_size=4)
    receiver, url = start_receiver("--quiet")
    try:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE webhook_endpoints, webhook_deliveries CASCADE"))
            endpoint = await add_endpoint(conn, url)
            await conn.execute(_EVENTS, {"endpoint": endpoint, "first": 1, "n": events})
        bare_rate, bare_cpu = await bare_loop(url, events)
        deliverer = Deliverer(settings, create_sessionmaker(engine))
        cpu0 = process_cpu_seconds(os.getpid())
        started = time.perf_counter()
        await deliverer.drain(timeout=600)
        elapsed = time.perf_counter() - started
        cpu = process_cpu_seconds(os.getpid()) - cpu0
        receiver_cpu = process_cpu_seconds(receiver.pid)
        await deliverer.stop(grace=1)
        async with engine.connect() as conn:
            delivered = int(
                await conn.scalar(
                    text("SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'")
                )
            )
    finally:
        receiver.terminate()
        receiver.wait(10)
        await engine.dispose()
    rate = delivered / elapsed
    return [
        Row("deliveries", float(delivered), "", f"of {events} written"),
        Row("deliveries/s, one deliverer", rate, "/s", f"target ≥ {THROUGHPUT_TARGET:,.0f}"),
        Row("ratio to target", rate / THROUGHPUT_TARGET, "", "≥ 1"),
        Row("deliverer CPU a delivery", cpu / max(delivered, 1) * 1e6, "µs"),
        Row("bare aiohttp loop, same receiver", bare_rate, "/s", f"{bare_cpu:,.0f} µs CPU a POST"),
        Row("deliverer / bare loop", rate / bare_rate, "", "the machine's load cancels out"),
        Row("receiver CPU a delivery", receiver_cpu / max(delivered, 1) * 1e6, "µs"),
    ]


async def _autovacuum_stand_in(engine: AsyncEngine, vacuums: list[float]) -> None:
    """What autovacuum does for ``webhook_deliveries`` on a server where it is on (the
    default, and production's): every ``autovacuum_naptime``, a VACUUM of the table once
    its dead rows pass the table's threshold (migration whout3c4d5e6). This machine's
    server runs with autovacuum off (its CI configuration), and a queue table that is
    never vacuumed slows every claim down as its dead rows pile up."""
    async with engine.connect() as conn:
        naptime = await conn.scalar(
            text("SELECT setting::float FROM pg_settings WHERE name = 'autovacuum_naptime'")
        )
        threshold = await conn.scalar(
            text(
                "SELECT split_part(o, '=', 2)::float FROM pg_class, unnest(reloptions) o"
                " WHERE relname = 'webhook_deliveries' AND o LIKE 'autovacuum_vacuum_threshold=%'"
            )
        )
    while True:
        await asyncio.sleep(float(naptime or 60))
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            dead = await conn.scalar(
                text(
                    "SELECT n_dead_tup FROM pg_stat_user_tables"
                    " WHERE relname = 'webhook_deliveries'"
                )
            )
            if dead is not None and dead >= (threshold or 50):
                started = time.perf_counter()
                await conn.execute(text("VACUUM (ANALYZE) webhook_deliveries"))
                vacuums.append(time.perf_counter() - started)


async def dead_endpoint(settings: Settings, seconds: float, rate: float, live: int) -> list[Row]:
    engine = create_engine(settings, pool_size=4)
    async with engine.connect() as conn:
        autovacuum = await conn.scalar(text("SHOW autovacuum"))
    vacuums: list[float] = []
    stand_in = None
    if autovacuum != "on":
        stand_in = asyncio.create_task(_autovacuum_stand_in(engine, vacuums))
    dead, dead_url = start_receiver("--blackhole")
    alive, live_url = start_receiver("--quiet")
    deliverer = Deliverer(settings, create_sessionmaker(engine))
    try:
        async with engine.begin() as conn:
            await conn.execute(text("TRUNCATE webhook_endpoints, webhook_deliveries CASCADE"))
            dead_id = await add_endpoint(conn, dead_url)
            live_ids = [await add_endpoint(conn, live_url) for _ in range(live)]
        deliverer.start()
        first = 1
        tick = 0.1
        per_tick = max(1, round(rate * tick))
        started = time.monotonic()
        while time.monotonic() - started < seconds:
            async with engine.begin() as conn:
                for endpoint in (dead_id, *live_ids):
                    await conn.execute(
                        _EVENTS, {"endpoint": endpoint, "first": first, "n": per_tick}
                    )
            first += per_tick
            deliverer.wake()
            await asyncio.sleep(tick)
        # the live endpoints' last events: until they are all delivered
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                left = await conn.scalar(
                    text(
                        "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
                        " AND endpoint_id <> :dead"
                    ),
                    {"dead": dead_id},
                )
            if not left:
                break
            await asyncio.sleep(0.2)
        async with engine.connect() as conn:
            stats = (
                await conn.execute(
                    text(
                        """
                        SELECT count(*) AS n,
                               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM
                                   delivered_at - created_at)) AS p50,
                               percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM
                                   delivered_at - created_at)) AS p99,
                               max(extract(epoch FROM delivered_at - created_at)) AS worst
                          FROM webhook_deliveries
                         WHERE endpoint_id <> :dead AND status = 'delivered'
                        """
                    ),
                    {"dead": dead_id},
                )
            ).one()
            dead_row = (
                await conn.execute(
                    text(
                        "SELECT count(*) AS n, sum(attempts) AS attempts,"
                        " count(*) FILTER (WHERE status = 'pending') AS pending"
                        " FROM webhook_deliveries WHERE endpoint_id = :dead"
                    ),
                    {"dead": dead_id},
                )
            ).one()
    finally:
        if stand_in is not None:
            if stand_in.done():
                stand_in.result()  # its failure, if it failed
            stand_in.cancel()
        await deliverer.stop(grace=1)
        for proc in (dead, alive):
            proc.terminate()
            proc.wait(10)
        await engine.dispose()
    return [
        Row("dead endpoint for", seconds, "s", f"{rate:g} events/s to it and to each live one"),
        Row("live endpoints' deliveries", float(stats.n), "", f"{live} endpoint(s)"),
        Row("live latency p50", float(stats.p50 or 0) * 1000, "ms"),
        Row("live latency p99", float(stats.p99 or 0) * 1000, "ms", f"target ≤ {P99_TARGET_S:g} s"),
        Row("live latency max", float(stats.worst or 0) * 1000, "ms"),
        Row(
            "dead endpoint's events",
            float(dead_row.n),
            "",
            f"{dead_row.attempts or 0} attempts made, {dead_row.pending} pending (held)",
        ),
        Row(
            "server's autovacuum",
            float(len(vacuums)),
            "",
            "on"
            if stand_in is None
            else "off here: the bench ran VACUUM as autovacuum would, this many times"
            f" ({sum(vacuums):.1f} s in all)",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--dead-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s to each endpoint")
    parser.add_argument("--live", type=int, default=2, help="live endpoints next to the dead one")
    parser.add_argument("--only", default="throughput,dead")
    parser.add_argument(
        "--database-url",
        default=os.environ.get(
            "MAILER_BENCH_DATABASE_URL",
            "postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_webhooks_out",
        ),
    )
    args = parser.parse_args()
    migrate(args.database_url)  # runs its own event loop
    settings = Settings(
        database_url=args.database_url,
        secret_key="bench-" + "k" * 40,
        webhooks_allow_private=True,
    )
    parts = set(args.only.split(","))
    if "throughput" in parts:
        print_table(
            "webhooks out: throughput of one deliverer",
            asyncio.run(throughput(settings, args.events)),
        )
    if "dead" in parts:
        print_table(
            "webhooks out: a dead endpoint next to live ones",
            asyncio.run(dead_endpoint(settings, args.dead_seconds, args.rate, args.live)),
        )


if __name__ == "__main__":
    main()
