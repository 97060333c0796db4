"""The embedded local stack: services answer, stop cleanly, and die with their launcher."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import asyncpg
import boto3
import psutil
import pytest
import redis

from mailer.local.databases import start_postgres, start_redis
from mailer.local.ses_emulators import start_moto

# fixed ports: the module's tests run one after another on one xdist worker
pytestmark = pytest.mark.xdist_group("devstack-ports")

# ports apart from `mailer dev`'s defaults (15432/16379/15000) and the conftest's fallbacks
PORTS = {"pg": 15433, "redis": 16380, "moto": 15001}
KILL_PORTS = {"pg": 15434, "redis": 16381, "moto": 15002}


def _gone(pids: list[int], timeout: float = 5.0) -> list[int]:
    """The pids still alive (not zombies) after waiting up to ``timeout``."""
    deadline = time.monotonic() + timeout
    alive = pids
    while True:
        alive = [pid for pid in alive if _alive(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _tree(pid: int) -> list[int]:
    return [pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))]


async def test_services_answer_and_stop(tmp_path: Path) -> None:
    pg = start_postgres(tmp_path, port=PORTS["pg"], database="devstack_test")
    rd = start_redis(tmp_path, port=PORTS["redis"])
    moto = start_moto(PORTS["moto"], sender="demo@mailer.test", base_dir=tmp_path)
    services = [pg, rd, moto]
    try:
        pids = [pid for s in services for pid in _tree(s.pid)]

        conn = await asyncpg.connect(pg.url.replace("postgresql+asyncpg", "postgresql"))
        try:
            assert await conn.fetchval("SELECT 1") == 1
            assert await conn.fetchval("SELECT current_database()") == "devstack_test"
        finally:
            await conn.close()

        assert redis.Redis.from_url(rd.url).ping()

        ses = boto3.client(
            "sesv2",
            region_name="us-east-1",
            endpoint_url=moto.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        # botocore's ListEmailIdentities route is newer than moto's; ask for each identity
        for identity in ("demo@mailer.test", "mailer.test"):
            assert ses.get_email_identity(EmailIdentity=identity)["IdentityType"]
        # the compose stack's sender passes the API's alignment check (mailer.ses.senders)
        dkim = ses.get_email_identity(EmailIdentity="mailer.test")["DkimAttributes"]
        assert dkim["Status"] == "SUCCESS"
        sent = ses.send_email(
            FromEmailAddress="demo@mailer.test",
            Destination={"ToAddresses": ["a@example.com"]},
            Content={"Simple": {"Subject": {"Data": "hi"}, "Body": {"Text": {"Data": "hi"}}}},
        )
        assert sent["MessageId"]
        assert (tmp_path / "logs" / "postgres.log").exists()
    finally:
        for service in reversed(services):
            service.stop()

    assert _gone(pids) == []
    assert not any(s.running() for s in services)


LAUNCHER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from mailer.local.databases import start_postgres, start_redis
    from mailer.local.ses_emulators import start_moto

    base, pg_port, redis_port, moto_port = Path(sys.argv[1]), *map(int, sys.argv[2:5])
    services = [
        start_postgres(base, port=pg_port),
        start_redis(base, port=redis_port),
        start_moto(moto_port, base_dir=base),
    ]
    print(json.dumps([s.pid for s in services]), flush=True)
    time.sleep(600)
""")


def _launch(base: Path) -> tuple[subprocess.Popen[str], list[int]]:
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(base), *(str(p) for p in KILL_PORTS.values())],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert launcher.stdout is not None
    line = launcher.stdout.readline()
    if not line:
        launcher.wait(5)
        pytest.fail(f"the launcher exited with {launcher.returncode} before starting the stack")
    service_pids = json.loads(line)
    # the postgres backends too
    pids = [pid for service_pid in service_pids for pid in _tree(service_pid)]
    return launcher, pids


def test_children_die_with_a_killed_launcher_and_the_stack_starts_again(tmp_path: Path) -> None:
    launcher, pids = _launch(tmp_path)
    assert len(pids) >= 3 and all(_alive(pid) for pid in pids)

    launcher.send_signal(signal.SIGKILL)
    launcher.wait(5)
    assert _gone(pids) == [], "children outlived their SIGKILLed launcher"

    # the same data dir again: postmaster.pid was left behind, ports were just released
    launcher, pids = _launch(tmp_path)
    try:
        assert all(_alive(pid) for pid in pids)
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(5)
    assert _gone(pids) == []
