"""The local stack's SES emulators, each a child process: the project's stand-in as SES endpoint
and mailbox simulator, and moto (apart from the databases: tests start either on its own).

The stand-in is the stack's SES (moto cannot publish SNS notifications); ``start_moto``
remains for tests that want an independent SES emulator.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mailer.local.databases import require_package
from mailer.local.processes import (
    Service,
    StackError,
    port_open,
    spawn,
    start_ready,
    wait_port_free,
    wait_until,
)

AWS_TEST_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


_EASY_DKIM = {"NextSigningKeyLength": "RSA_2048_BIT"}


def verify_sender(
    endpoint: str,
    sender: str,
    regions: Sequence[str] = ("us-east-1",),
    configuration_sets: Sequence[str] = ("transactional", "marketing"),
) -> None:
    """Create the SES v2 identities of ``sender`` and its domain, so that moto accepts it,
    the domain with Easy DKIM (``SUCCESS`` in both emulators: the API's alignment check
    passes, ``mailer.ses.senders``), and the configuration sets the workers check for."""
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
                dkim = {} if "@" in identity else {"DkimSigningAttributes": _EASY_DKIM}
                client.create_email_identity(EmailIdentity=identity, **dkim)
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
    require_package("moto", "moto[server]")
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, **AWS_TEST_ENV}
    process = start_ready("moto", argv, log_path, port, lambda: _moto_ready(endpoint), env=env)
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
