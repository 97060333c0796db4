"""The whole local stack behind ``mailer dev``: its services, migrations, an admin key, the API
and one worker, and the stack file through which the CLI finds a running stack."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from mailer.local.databases import start_postgres, start_redis
from mailer.local.processes import (
    Service,
    StackError,
    log_tail,
    port_open,
    spawn,
    wait_port_free,
    wait_until,
)
from mailer.local.ses_emulators import AWS_TEST_ENV, start_ses_standin, verify_sender

DEV_POSTAL = "mailer dev stack, 1 Example Street, Springfield"  # MAILER_POSTAL_ADDRESS


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
            # bulk mail must show one (issue 21): the demo's, unless the user gave theirs
            "MAILER_POSTAL_ADDRESS": os.environ.get("MAILER_POSTAL_ADDRESS") or DEV_POSTAL,
            # the embedded emulator receives unsubscribe mail (POST /_standin/receive)
            "MAILER_INBOUND_UNSUBSCRIBE_DOMAIN": os.environ.get("MAILER_INBOUND_UNSUBSCRIBE_DOMAIN")
            or (
                "unsubscribe." + self.config.sender.rpartition("@")[2]
                if not self.config.ses_endpoint
                else ""
            ),
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
        wait_port_free(cfg.api_port, 5.0)
        if port_open(cfg.api_port, cfg.api_host):
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
