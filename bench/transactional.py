"""Transactional mail: latency from API accept to SES call while a campaign holds the region
at its limit, and the accept rate of one API process.

    python bench/transactional.py                    # both parts, default sizes
    python bench/transactional.py --only latency --messages 300 --rate 200
    python bench/transactional.py --only accept --seconds 10 --connections 32

Everything is real: PostgreSQL, Redis, the SES stand-in (rate-limited like SES), one API
process (``mailer api``: uvicorn, real HTTP) and worker processes (``mailer worker``).

- latency: a campaign of ``--recipients`` keeps ``us-east-1`` at the stand-in's rate
  (``--rate``, read by the workers from GetAccount); once it does, ``--messages``
  transactional messages are posted at ``--tx-per-second``. Latency is the stand-in's
  receipt time of the SendEmail call minus the time the request was sent to the API
  (so it includes the API's own work). Judged by p99 <= 100 ms.
- accept: ``--connections`` keep-alive HTTP connections post single messages (each with
  its own Idempotency-Key) for ``--seconds``; then the same with batches of 100. The
  figure judged is accepted messages per second into the one API process (>= 1,000/s).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench.common as common  # noqa: E402
from bench import engine as eng  # noqa: E402
from mailer.local.ses_emulators import verify_sender  # noqa: E402
from mailer.local.standin_client import StandinControl  # noqa: E402
from mailer.secrets import new_key  # noqa: E402
from tests.fixtures.workers import wait_until  # noqa: E402

DATABASE_URL = os.environ.get(
    "MAILER_BENCH_DATABASE_URL", "postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_tx"
)
REDIS_URL = os.environ.get("MAILER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/10")
API_PORT = int(os.environ.get("MAILER_BENCH_API_PORT", "18431"))
SENDER = "shop@bench.test"


STANDIN_PORT: int | None = None  # None: a free port


def create_key() -> str:
    from mailer.auth.service import create_key as create
    from mailer.config import Settings
    from mailer.db import create_engine, create_sessionmaker, transaction

    async def make() -> str:
        engine = create_engine(Settings(database_url=DATABASE_URL))
        async with transaction(create_sessionmaker(engine)) as session:
            _, raw = await create(session, "bench", ["transactional"])
        await engine.dispose()
        return raw

    return asyncio.run(make())


def start_api(ses_url: str, log: Path) -> subprocess.Popen[bytes]:
    # the sender's domain with DKIM SUCCESS: the API checks it (once) at the door
    verify_sender(ses_url, SENDER)
    env = dict(os.environ)
    env.update(
        {
            "MAILER_DATABASE_URL": DATABASE_URL,
            "MAILER_SECRET_KEY": new_key(),
            "MAILER_REDIS_URL": REDIS_URL,
            "MAILER_LOG_LEVEL": "WARNING",
            "AWS_ENDPOINT_URL_SESV2": ses_url,
            "PYTHONPATH": str(eng.ROOT),
        }
    )
    process = subprocess.Popen(  # noqa: S603 - our own console script
        [sys.executable, "-m", "mailer.cli", "api", "--port", str(API_PORT)],
        env=env,
        cwd=eng.ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )

    def up() -> bool:
        import httpx

        try:
            return httpx.get(f"http://127.0.0.1:{API_PORT}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 30, 0.2, "the API did not start")
    return process


# -- a small keep-alive HTTP client: the load generator must not be the bottleneck -------


def _request(path: str, key: str, body: dict[str, Any], idempotency_key: str | None) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    )
    if idempotency_key is not None:
        head += f"Idempotency-Key: {idempotency_key}\r\n"
    return (head + "\r\n").encode() + data


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", API_PORT))

    async def call(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def message(i: int, prefix: str) -> dict[str, Any]:
    return {
        "to": f"{prefix}{i}@example.test",
        "from_address": f"Shop <{SENDER}>",
        "subject": "Your code {{ data.code }}",
        "html": "<p>Code {{ data.code }}</p>",
        "data": {"code": str(i)},
        "tags": {"kind": "code"},
    }


# -- latency while a campaign saturates the region ----------------------------------------


ANSWER_MS: list[float] = []


async def _post_spaced(key: str, n: int, per_second: float) -> dict[int, float]:
    """Post ``n`` messages ``1/per_second`` apart; message id -> wall time of the request."""
    started: dict[int, float] = {}
    conns = [await Connection.open() for _ in range(4)]
    run_id = f"{time.time():.0f}"

    async def one(i: int) -> None:
        request = _request("/v1/messages", key, message(i, "urgent"), f"lat-{run_id}-{i}")
        at = time.time()
        status, body = await conns[i % len(conns)].call(request)
        if status != 202:
            raise RuntimeError(f"{status}: {body[:300]!r}")
        started[json.loads(body)["id"]] = at
        ANSWER_MS.append((time.time() - at) * 1000)

    begin = time.monotonic()
    for i in range(n):
        # one request per connection at a time; the others keep the spacing
        await asyncio.sleep(max(0.0, begin + i / per_second - time.monotonic()))
        await one(i)
    for c in conns:
        c.close()
    return started


def measure_latency(args: argparse.Namespace, log_dir: Path) -> list[common.Row]:
    rows: list[common.Row] = []
    campaign_id = eng.seed_campaign(args.recipients, url=DATABASE_URL)
    key = create_key()
    with common.standin(rates={"us-east-1": args.rate}, record="summary", port=STANDIN_PORT) as ses:
        control = StandinControl(ses.url)
        api = start_api(ses.url, log_dir / "api.log")
        workers = eng.start_workers(
            args.workers,
            ses.url,
            "us-east-1",
            args.concurrency,
            log_dir,
            url=DATABASE_URL,
            redis_url=REDIS_URL,
        )
        try:
            time.sleep(3)  # workers up
            eng.launch(campaign_id, url=DATABASE_URL, redis_url=REDIS_URL)
            # the campaign holds the region: a full second's worth sent, and more queued
            control.wait_for_sent(args.rate * 5, timeout=120)
            started = asyncio.run(_post_spaced(key, args.messages, args.tx_per_second))
            wait_until(
                lambda: _tx_seen(control, started) >= len(started),
                120,
                0.2,
                "transactional messages did not all reach SES",
            )
            calls = control.messages()
            stats = control.stats()
        finally:
            workers.stop()
            api.terminate()
            api.wait(10)
    latencies = []
    campaign_times = []
    for call in calls:
        tags = {t["Name"]: t["Value"] for t in call.get("EmailTags") or []}
        mid = int(tags["message_id"])
        if tags.get("mail_class") == "transactional" and mid in started:
            latencies.append((call["time"] - started[mid]) * 1000)
        else:
            campaign_times.append(call["time"])
    if args.timeline:
        t0 = min(started.values())
        by_second: dict[int, list[int]] = {}
        for call in calls:
            tags = {t["Name"]: t["Value"] for t in call.get("EmailTags") or []}
            slot = by_second.setdefault(int(call["time"] - t0), [0, 0])
            slot[tags.get("mail_class") == "transactional"] += 1
        for second in sorted(by_second):
            print(
                f"  t={second:+4d}s  campaign {by_second[second][0]:4d}  "
                f"transactional {by_second[second][1]:4d}"
            )
    latencies.sort()
    window = (min(started.values()), max(started.values()))
    in_window = [t for t in campaign_times if window[0] <= t <= window[1]]
    before = [t for t in campaign_times if window[0] - 3 <= t < window[0]]
    span = window[1] - window[0]
    total_rate = (len(in_window) + len(latencies)) / span if span > 0 else 0.0
    p50 = statistics.median(latencies)
    p99 = latencies[min(len(latencies) - 1, int(round(0.99 * len(latencies))) - 1)]
    rows += [
        common.Row("transactional messages", len(latencies), "msgs"),
        common.Row("latency p50 (request sent -> SES call)", p50, "ms"),
        common.Row("latency p99", p99, "ms", f"target <= 100 ms: {'ok' if p99 <= 100 else 'MISS'}"),
        common.Row("latency max", latencies[-1], "ms"),
        common.Row(
            "region rate while measuring (all mail)",
            total_rate,
            "/s",
            f"stand-in limit {args.rate}/s",
        ),
        common.Row(
            "campaign sends while measuring",
            len(in_window) / span if span else 0,
            "/s",
            f"{len(before) / 3:.0f}/s in the 3 s before",
        ),
        common.Row("API answer p50 (request sent -> 202)", statistics.median(ANSWER_MS), "ms"),
        common.Row("throttled answers", stats["totals"].get("throttled", 0), "calls"),
    ]
    return rows


def _tx_seen(control: StandinControl, started: dict[int, float]) -> int:
    seen = 0
    for call in control.messages():
        tags = {t["Name"]: t["Value"] for t in call.get("EmailTags") or []}
        if tags.get("mail_class") == "transactional" and int(tags["message_id"]) in started:
            seen += 1
    return seen


# -- accept rate of one API process ---------------------------------------------------------


async def _accept_load(key: str, seconds: float, connections: int, batch: int) -> tuple[int, int]:
    """Accepted messages and non-2xx answers in ``seconds`` over ``connections``."""
    accepted = errors = 0
    deadline = time.monotonic() + seconds
    run_id = f"{time.time():.0f}-{batch}"
    counter = 0

    async def loop(c: Connection) -> None:
        nonlocal accepted, errors, counter
        while time.monotonic() < deadline:
            counter += 1
            n = counter
            if batch == 1:
                request = _request("/v1/messages", key, message(n, "buyer"), f"acc-{run_id}-{n}")
            else:
                items = [
                    {**message(n * batch + j, "buyer"), "idempotency_key": f"acc-{run_id}-{n}-{j}"}
                    for j in range(batch)
                ]
                request = _request("/v1/messages/batch", key, {"messages": items}, None)
            status, body = await c.call(request)
            if batch == 1:
                if status == 202:
                    accepted += 1
                else:
                    errors += 1
            else:
                if status != 200:
                    errors += batch
                    continue
                codes = [item["status_code"] for item in json.loads(body)["items"]]
                accepted += codes.count(202)
                errors += len(codes) - codes.count(202)

    conns = [await Connection.open() for _ in range(connections)]
    await asyncio.gather(*(loop(c) for c in conns))
    for c in conns:
        c.close()
    return accepted, errors


def measure_accept(args: argparse.Namespace, log_dir: Path) -> list[common.Row]:
    eng.seed_campaign(10, url=DATABASE_URL)  # an empty database (and a few contacts)
    key = create_key()
    rows = []
    with common.standin(port=STANDIN_PORT) as ses:
        api = start_api(ses.url, log_dir / "api-accept.log")
        try:
            asyncio.run(_accept_load(key, 1.0, args.connections, 1))  # warm-up
            cpu0 = common.process_cpu_seconds(api.pid)
            accepted, errors = asyncio.run(_accept_load(key, args.seconds, args.connections, 1))
            cpu = common.process_cpu_seconds(api.pid) - cpu0
            rows.append(
                common.Row(
                    "accept rate, single POST /v1/messages",
                    accepted / args.seconds,
                    "msgs/s",
                    f"target >= 1,000/s; {errors} errors; API CPU "
                    f"{cpu / args.seconds:.0%} of a core",
                )
            )
            # on a loaded machine the API gets only part of a core: its CPU per message
            # says what one whole core would accept
            rows.append(
                common.Row(
                    "  one core's worth (1 / API CPU per message)",
                    accepted / cpu if cpu else None,
                    "msgs/s",
                )
            )
            cpu0 = common.process_cpu_seconds(api.pid)
            accepted, errors = asyncio.run(
                _accept_load(key, args.seconds, max(args.connections // 4, 1), 100)
            )
            cpu = common.process_cpu_seconds(api.pid) - cpu0
            rows.append(
                common.Row(
                    "accept rate, POST /v1/messages/batch of 100",
                    accepted / args.seconds,
                    "msgs/s",
                    f"{errors} errors; API CPU {cpu / args.seconds:.0%} of a core",
                )
            )
            rows.append(
                common.Row(
                    "  one core's worth (1 / API CPU per message)",
                    accepted / cpu if cpu else None,
                    "msgs/s",
                )
            )
        finally:
            api.terminate()
            api.wait(10)
    return rows


def main() -> None:
    global DATABASE_URL, REDIS_URL, API_PORT, STANDIN_PORT
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="latency,accept")
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=200, help="the stand-in's us-east-1 rate")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--tx-per-second", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--timeline", action="store_true", help="sends per second, by class")
    parser.add_argument("--database-url", default=DATABASE_URL)
    parser.add_argument("--redis-url", default=REDIS_URL)
    parser.add_argument("--api-port", type=int, default=API_PORT)
    parser.add_argument("--standin-port", type=int, default=None, help="default: a free port")
    args = parser.parse_args()
    DATABASE_URL, REDIS_URL = args.database_url, args.redis_url
    API_PORT, STANDIN_PORT = args.api_port, args.standin_port
    parts = set(args.only.split(","))
    eng.prepare_database(DATABASE_URL)
    from bench.engine import flush_redis

    log_dir = Path(tempfile.mkdtemp(prefix="bench-tx-"))
    rows: list[common.Row] = []
    if "latency" in parts:
        flush_redis(REDIS_URL)
        rows += measure_latency(args, log_dir)
    if "accept" in parts:
        flush_redis(REDIS_URL)
        rows += measure_accept(args, log_dir)
    load = os.getloadavg()
    common.print_table(
        f"transactional (load average {load[0]:.1f} on {os.cpu_count()} cores; logs in {log_dir})",
        rows,
    )


if __name__ == "__main__":
    main()
