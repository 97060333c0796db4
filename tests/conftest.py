"""Test services: real PostgreSQL, Redis and an HTTP SES endpoint.

``MAILER_TEST_DATABASE_URL`` / ``MAILER_TEST_REDIS_URL`` name the services to use (CI sets
them); where they are not set, the embedded ones of ``mailer dev`` are started for the
session, so the suite passes on a fresh machine too. Each test starts from empty tables
and an empty Redis database.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from mailer.config import ROOT, Settings
from mailer.db import create_engine, create_sessionmaker, transaction
from tests.fixtures.database import migrate, truncate_all

# a key the product accepts (mailer.secrets refuses published, placeholder and short ones);
# fixed, so that a failing test's tokens can be reproduced
TEST_SECRET_KEY = "tst.7Qm2Vx9Lr4Kp8Zc3Hn6Wb1Fj5Dg0Ys"
TEST_METRICS_TOKEN = "metrics-token-of-the-tests"
TEST_LOCAL_SES = "http://127.0.0.1:9"  # discard: nothing answers there
CLOSED_DNS = "127.0.0.1:9"  # nothing answers DNS there either
TEST_POSTAL_ADDRESS = "Mailer Test Ltd, 1 Example Street, 10115 Berlin"

# Tests talk to the SES endpoints they start themselves, with fake credentials.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _xdist_index() -> int:
    """0 for a plain run or pytest-xdist's first worker (``gw0``), N for ``gwN``."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") else 0


def _per_worker(
    db_url: str | None, redis_url: str | None, index: int
) -> tuple[str | None, str | None]:
    """Each xdist worker gets a database and a Redis database of its own: ``<name>_gwN`` and
    the Redis database number N above the configured one (a plain run uses them as they are)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return db_url, redis_url
    if db_url:
        url = make_url(db_url)
        db_url = url.set(database=f"{url.database}_gw{index}").render_as_string(hide_password=False)
    if redis_url:
        base, _, number = redis_url.rpartition("/")
        if base.startswith("redis") and number.isdigit():
            redis_url = f"{base}/{int(number) + index}"
        else:
            redis_url = f"{redis_url.rstrip('/')}/{index}"
    return db_url, redis_url


@pytest.fixture(scope="session")
def service_urls() -> Iterator[dict[str, str]]:
    """Database and Redis URLs: configured ones, or embedded ones started here."""
    index = _xdist_index()
    db_url, redis_url = _per_worker(
        os.environ.get("MAILER_TEST_DATABASE_URL"), os.environ.get("MAILER_TEST_REDIS_URL"), index
    )
    started = []
    tmp = Path(tempfile.mkdtemp(prefix="mailer-test-"))
    if not db_url or not redis_url:
        from mailer.local.databases import start_postgres, start_redis

        # embedded servers of their own per xdist worker, on ports of their own
        if not db_url:
            pg = start_postgres(
                tmp / "pg", port=int(os.environ.get("MAILER_TEST_PG_PORT", 25432)) + index
            )
            started.append(pg)
            db_url = pg.url
        if not redis_url:
            rd = start_redis(
                tmp / "redis", port=int(os.environ.get("MAILER_TEST_REDIS_PORT", 26379)) + index
            )
            started.append(rd)
            redis_url = rd.url
    try:
        yield {"database_url": db_url, "redis_url": redis_url}
    finally:
        for service in reversed(started):
            service.stop()


@pytest.fixture(scope="session")
def settings(service_urls: dict[str, str]) -> Settings:
    return Settings(
        database_url=service_urls["database_url"],
        redis_url=service_urls["redis_url"],
        public_url="http://mailer.test",
        # tests never reach real SES: the API's settings name a loopback SES (the local
        # emulator's rules apply: an http public URL is fine); tests that send start a
        # stand-in of their own and give its URL to their workers
        ses_endpoint_url=TEST_LOCAL_SES,
        postal_address=TEST_POSTAL_ADDRESS,
        secret_key=TEST_SECRET_KEY,
        metrics_token=TEST_METRICS_TOKEN,
        regions="us-east-1",
        reconcile_interval_seconds=1.0,
        lease_seconds=5.0,
        retry_base_seconds=0.2,
        templates_dir=ROOT / "templates",
        # DNS (DMARC, MX look-ups) only on loopback: a closed port, unless a test serves
        # records of its own (tests/fixtures/dns.py)
        dns_resolvers=[CLOSED_DNS],
    )


@pytest.fixture(scope="session")
def _migrated(settings: Settings) -> None:
    migrate(settings.database_url)


@pytest.fixture(scope="session")
async def engine(settings: Settings, _migrated: None) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture(scope="session")
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
async def _clean(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty tables and Redis before each test that uses the database or Redis."""
    names = set(request.fixturenames)
    if names & {"engine", "sessionmaker", "client", "make_key", "admin_key"}:
        engine: AsyncEngine = request.getfixturevalue("engine")
        await truncate_all(engine)
    if names & {"redis", "client"}:
        redis: Redis = request.getfixturevalue("redis")
        await redis.flushdb()
    yield


@pytest.fixture
async def app(settings: Settings, engine: AsyncEngine) -> AsyncIterator[object]:
    from mailer.app import create_app

    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: object, redis: Redis) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://mailer.test") as c:
        yield c


@pytest.fixture
def make_key(sessionmaker: async_sessionmaker[AsyncSession]):  # type: ignore[no-untyped-def]
    """``await make_key("campaigns")`` → a raw API key with those scopes."""
    from mailer.auth.service import create_key

    async def _make(*scopes: str, name: str = "test") -> str:
        async with transaction(sessionmaker) as session:
            _, raw = await create_key(session, name, list(scopes))
        return raw

    return _make


@pytest.fixture
async def admin_key(make_key) -> str:  # type: ignore[no-untyped-def]
    return await make_key("admin", name="admin")


@pytest.fixture
def admin(admin_key: str) -> dict[str, str]:
    """Authorization headers of an admin key."""
    return {"Authorization": f"Bearer {admin_key}"}


async def _count(engine: AsyncEngine, sql: str) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text(sql))).scalar_one())


from tests.fixtures.standin import clean_standin, standin  # noqa: E402,F401
from tests.fixtures.workers import WorkerProcess, worker_env  # noqa: E402


@pytest.fixture
def start_worker(settings: Settings, clean_standin, tmp_path: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    """``start_worker(**env)`` → a running ``mailer worker`` against the test services."""
    started: list[WorkerProcess] = []

    def _start(**extra: str) -> WorkerProcess:
        env = worker_env(settings, clean_standin.url, **extra)
        worker = WorkerProcess(env, tmp_path / f"worker-{len(started)}.log")
        started.append(worker)
        return worker

    yield _start
    for worker in started:
        worker.stop()
