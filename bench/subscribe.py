"""Benchmark: public form submissions into one API process (target ≥ 500/s with p99 ≤ 50 ms,
the confirmation mail queued, not sent), and a topic campaign's audience fix-up on
1,000,000 contacts (target ≤ 10 s).

    python bench/subscribe.py [--seconds 10] [--connections 16] [--contacts 1000000]
                              [--skip-fixup] [--skip-forms]

Every submission is a new address on a double opt-in topic: a contact, its unconfirmed
subscription with the consent record, a confirmation row and its transactional message,
and the job queued after the commit. Rate limits are lifted and the minimum fill time is 0
(each submission carries a genuine form token).
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from bench import audience  # noqa: E402
from bench.common import process_cpu_seconds  # noqa: E402
from mailer.config import Settings  # noqa: E402
from mailer.db import create_engine  # noqa: E402
from mailer.secrets import new_key  # noqa: E402
from mailer.subscription.tokens import form_token  # noqa: E402
from tests.fixtures.database import ensure_database, migrate  # noqa: E402
from tests.fixtures.workers import wait_until  # noqa: E402

DATABASE_URL = os.environ.get(
    "MAILER_BENCH_DATABASE_URL", "postgresql+asyncpg://root@127.0.0.1:5432/mailer_bench_subs"
)
REDIS_URL = os.environ.get("MAILER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
API_PORT = int(os.environ.get("MAILER_BENCH_API_PORT", "18437"))
TARGET_RATE, TARGET_P99_MS, TARGET_FIXUP_S = 500.0, 50.0, 10.0


async def _seed_form() -> None:
    engine = create_engine(Settings(database_url=DATABASE_URL))
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE topics, forms, contacts CASCADE"))
        await conn.execute(
            text("INSERT INTO topics (id, name, double_opt_in) VALUES (1, 'News', true)")
        )
        await conn.execute(
            text(
                "INSERT INTO forms (id, name, topic_ids, fields, from_address, consent_text)"
                " VALUES (1, 'bench', '{1}', '{first_name}', 'news@bench.test', 'Yes please')"
            )
        )
    await engine.dispose()


def _start_api(secret: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        {
            "MAILER_DATABASE_URL": DATABASE_URL,
            "MAILER_REDIS_URL": REDIS_URL,
            "MAILER_SECRET_KEY": secret,
            "MAILER_LOG_LEVEL": "WARNING",
            "MAILER_SUBSCRIBE_MIN_FILL_SECONDS": "0",
            "MAILER_SUBSCRIBE_MAX_PER_IP_PER_MINUTE": "100000000",
            "PYTHONPATH": str(ROOT),
        }
    )
    process = subprocess.Popen(  # noqa: S603 - our own console script
        [sys.executable, "-m", "mailer.cli", "api", "--port", str(API_PORT)],
        env=env,
        cwd=ROOT,
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


def _request(body: dict[str, str]) -> bytes:
    data = json.dumps(body, separators=(",", ":")).encode()
    head = (
        "POST /subscribe/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"User-Agent: bench\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def _load(secret: str, seconds: float, connections: int) -> tuple[list[float], int]:
    settings = Settings(secret_key=secret)
    token = form_token(settings, 1, time.time() - 5)
    latencies: list[float] = []
    errors = 0
    counter = iter(range(int(time.time() * 1000) % 10**9, 10**10))
    deadline = time.perf_counter() + seconds

    async def one_connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", API_PORT)
        while time.perf_counter() < deadline:
            i = next(counter)
            body = {"email": f"reader{i}@bench.test", "token": token, "first_name": f"R{i}"}
            started = time.perf_counter()
            writer.write(_request(body))
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if head[9:12] != b"200":
                errors += 1
                print("non-200:", head[:12].decode(), answer[:300].decode(errors="replace"))
        writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    return latencies, errors


async def _counts() -> tuple[int, int]:
    engine = create_engine(Settings(database_url=DATABASE_URL))
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM confirmations),"
                    " (SELECT count(*) FROM messages WHERE mail_class = 'transactional')"
                )
            )
        ).one()
    await engine.dispose()
    return int(row[0]), int(row[1])


def forms(seconds: float, connections: int) -> None:
    asyncio.run(_seed_form())
    secret = new_key()
    log = Path(tempfile.mkdtemp(prefix="bench-subscribe-")) / "api.log"
    api = _start_api(secret, log)
    try:
        asyncio.run(_load(secret, 1.0, connections))  # warm-up
        cpu_before = process_cpu_seconds(api.pid)
        started = time.perf_counter()
        latencies, errors = asyncio.run(_load(secret, seconds, connections))
        elapsed = time.perf_counter() - started
        cpu = process_cpu_seconds(api.pid) - cpu_before
    finally:
        api.terminate()
        api.wait(10)
    confirmations, mails = asyncio.run(_counts())
    rate = len(latencies) / elapsed
    p50 = statistics.median(latencies) * 1000
    p99 = sorted(latencies)[int(len(latencies) * 0.99) - 1] * 1000
    print(
        f"form submissions: {len(latencies):,} in {elapsed:.1f} s = {rate:,.0f}/s over"
        f" {connections} connections; p50 {p50:.1f} ms, p99 {p99:.1f} ms; {errors} non-200;"
        f" {confirmations:,} confirmations, {mails:,} mails queued"
    )
    print(
        f"API process CPU: {cpu:.2f} s = {cpu / len(latencies) * 1000:.2f} ms per submission"
        f" (one core: {len(latencies) / cpu:,.0f}/s); load average {os.getloadavg()[0]:.1f}"
    )
    ok = rate >= TARGET_RATE and p99 <= TARGET_P99_MS
    verdict = "PASS" if ok else "FAIL"
    print(
        f"target ≥ {TARGET_RATE:.0f}/s with p99 ≤ {TARGET_P99_MS:.0f} ms: {verdict}"
        f" (rate ratio {rate / TARGET_RATE:.2f}, p99 ratio {p99 / TARGET_P99_MS:.2f})"
    )


async def _seed_topic(settings: Settings) -> None:
    """Topic 1 on the campaign; two contacts in three subscribed, a few unconfirmed."""
    engine = create_engine(settings)
    async with engine.begin() as conn:
        await conn.execute(text("TRUNCATE contact_topics, topic_changes"))
        await conn.execute(
            text("INSERT INTO topics (id, name) VALUES (1, 'News') ON CONFLICT DO NOTHING")
        )
        await conn.execute(
            text(
                "INSERT INTO contact_topics (contact_id, topic_id, status) SELECT id, 1,"
                " CASE WHEN id % 3 = 0 THEN 'unsubscribed' WHEN id % 50 = 1 THEN 'unconfirmed'"
                " ELSE 'subscribed' END FROM contacts"
            )
        )
        await conn.execute(text("UPDATE campaigns SET topic_id = 1 WHERE id = 1"))
    async with engine.connect() as conn:
        await conn.execute(text("COMMIT"))
        await conn.execute(text("VACUUM ANALYZE contact_topics"))
    await engine.dispose()


def fixup(contacts: int, connections: int) -> None:
    url = DATABASE_URL + "_fixup"
    settings = Settings(database_url=url, audience_fixup_connections=connections)
    asyncio.run(ensure_database(url))
    migrate(url)
    campaign_id = asyncio.run(audience.seed(settings, contacts))
    asyncio.run(_seed_topic(settings))
    elapsed, recipients = asyncio.run(audience.fix_up(settings, campaign_id))
    print(
        f"topic audience fix-up: {recipients:,} recipients of {contacts:,} contacts in"
        f" {elapsed:.2f} s ({connections} connection(s))"
    )
    print(
        f"target ≤ {TARGET_FIXUP_S:.0f} s: {'PASS' if elapsed <= TARGET_FIXUP_S else 'FAIL'}"
        f" (ratio {elapsed / TARGET_FIXUP_S:.2f} of the budget)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument(
        "--fixup-connections", type=int, default=Settings().audience_fixup_connections
    )
    parser.add_argument("--skip-forms", action="store_true")
    parser.add_argument("--skip-fixup", action="store_true")
    args = parser.parse_args()
    if not args.skip_forms:
        asyncio.run(ensure_database(DATABASE_URL))
        migrate(DATABASE_URL)
        forms(args.seconds, args.connections)
    if not args.skip_fixup:
        fixup(args.contacts, args.fixup_connections)


if __name__ == "__main__":
    main()
