"""The local stack ``mailer ses`` runs against: the SES emulator (also SNS, signing its
confirmations with a local certificate) and a real API process whose ``/webhooks/sns``
verifies and confirms subscriptions through it. Commands run as ``python -m mailer.cli``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.config import Settings
from tests.fixtures.api import free_port
from tests.fixtures.dns import DnsStub
from tests.fixtures.standin import StandinProcess, start_standin
from tests.fixtures.workers import ROOT, _die_with_parent, worker_env

TOPIC = "arn:aws:sns:us-east-1:000000000000:mailer-ses-events"
SECRET = "a-test-secret-key-that-is-long-enough-0123456789"


@dataclass
class Stack:
    emulator: StandinProcess
    api_url: str
    env: dict[str, str]
    dns: DnsStub  # the DMARC look-ups of `mailer ses check` (TXT records by name)

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        """``mailer ARGS`` against the stack (``extra`` overrides its environment)."""
        return subprocess.run(  # noqa: S603 - our own command
            [sys.executable, "-m", "mailer.cli", *args],
            env={**self.env, **extra},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def run_json(self, *args: str, **extra: str) -> tuple[int, dict[str, Any]]:
        done = self.run(*args, "--json", **extra)
        try:
            return done.returncode, json.loads(done.stdout)
        except ValueError as exc:
            raise AssertionError(f"not JSON:\n{done.stdout}\n{done.stderr}") from exc

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            region_name="us-east-1",
            endpoint_url=self.emulator.url,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",  # noqa: S106
        )

    def account(self) -> dict[str, Any]:
        answer = httpx.get(f"{self.emulator.url}/_standin/account", timeout=10)
        return dict(answer.json())


@pytest.fixture(scope="module")
def _stack(
    settings: Settings, _migrated: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("ses-stack")
    dns = DnsStub().__enter__()
    emulator = start_standin(extra_args=["--sns-signing-dir", str(base / "sns")])
    cert_dir = next((base / "sns").glob("certs"))
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    env = worker_env(
        settings,
        emulator.url,
        AWS_ENDPOINT_URL_SNS=emulator.url,
        MAILER_PUBLIC_URL=api_url,
        MAILER_SNS_TOPIC_ARNS=TOPIC,
        MAILER_SNS_CERT_DIR=str(cert_dir),
        MAILER_SECRET_KEY=SECRET,
        # DNS on loopback only; the API reads each From domain's identity again after 2 s
        MAILER_DNS_RESOLVERS=dns.address,
        MAILER_SENDER_CHECK_SECONDS="2",
    )
    log = (base / "api.log").open("wb")
    api = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "mailer.cli", "api", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{api_url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if api.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((base / "api.log").read_text())
        time.sleep(0.2)
    try:
        yield Stack(emulator, api_url, env, dns)
    finally:
        api.terminate()
        api.wait(10)
        log.close()
        emulator.stop()
        dns.__exit__()


@pytest.fixture
def stack(_stack: Stack, engine: AsyncEngine) -> Stack:
    """The module's stack with a fresh SES account (no topic, identity or destination) and,
    through ``engine``, empty tables (``check`` reads the campaigns other tests left), and
    no DNS record."""
    _stack.emulator.control.reset()
    _stack.dns.txt.clear()
    return _stack


def wait_for(predicate: Any, what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
