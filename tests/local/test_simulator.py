"""The stand-in as SES's mailbox simulator: each simulator address gets its SES event,
published shortly after the send as an SNS notification the webhook accepts as genuine."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from mailer.local.simulator import DEFAULT_TOPIC, simulator_kind
from mailer.webhook.sns import CertStore, verify
from tests.fixtures.standin import StandinProcess, start_standin
from tests.local.test_standin import email, ses


class Webhook:
    """A stand-in for our API's /webhooks/sns that keeps what it is sent."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.fail_first = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        if self.fail_first > 0:
            self.fail_first -= 1
            return web.Response(status=503)
        self.bodies.append(await request.read())
        return web.Response(text="{}")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/webhooks/sns", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/webhooks/sns"

    async def wait(self, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:  # noqa: ASYNC109
        deadline = time.monotonic() + timeout
        while len(self.bodies) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"got {len(self.bodies)} notifications, wanted {count}")
            await asyncio.sleep(0.05)
        return [json.loads(b) for b in self.bodies]


@pytest.fixture
async def webhook() -> Any:
    hook = Webhook()
    await hook.start()
    yield hook
    assert hook.runner is not None
    await hook.runner.cleanup()


def _simulating(webhook: Webhook, signing: Path, *extra: str) -> StandinProcess:
    return start_standin(
        extra_args=[
            "--sns-webhook",
            webhook.url,
            "--sns-signing-dir",
            str(signing),
            "--sns-delay-ms",
            "100",
            *extra,
        ]
    )


def test_simulator_addresses() -> None:
    assert simulator_kind("Bounce+x1@Simulator.AmazonSES.com") == "bounce"
    assert simulator_kind("success@simulator.amazonses.com") == "success"
    assert simulator_kind("success@simulator.amazonses.com.evil") is None
    assert simulator_kind("nobody@simulator.amazonses.com") is None
    assert simulator_kind("bounce@example.com") is None


async def test_each_simulator_address_gets_its_event(webhook: Webhook, tmp_path: Path) -> None:
    expected = {
        "success@simulator.amazonses.com": [("Delivery", None)],
        "ooto@simulator.amazonses.com": [("Delivery", None)],
        "bounce+a@simulator.amazonses.com": [("Bounce", "General")],
        "suppressionlist@simulator.amazonses.com": [("Bounce", "OnAccountSuppressionList")],
        "complaint@simulator.amazonses.com": [("Delivery", None), ("Complaint", None)],
        "someone@example.test": [],
    }
    with _simulating(webhook, tmp_path) as proc:
        client = ses(proc.url)
        ids = {}
        for to in expected:
            request = email(to) | {
                "ConfigurationSetName": "marketing",
                "EmailTags": [{"Name": "message_id", "Value": "42"}],
            }
            ids[to] = (await asyncio.to_thread(client.send_email, **request))["MessageId"]
        bodies = await webhook.wait(sum(len(v) for v in expected.values()))
        await asyncio.sleep(0.5)  # nothing more comes (no event for ordinary mail)
        assert len(webhook.bodies) == len(bodies)

    certs = CertStore(tmp_path / "certs", httpx.AsyncClient())
    seen: dict[str, list[tuple[str, str | None]]] = {to: [] for to in expected}
    for raw in webhook.bodies:
        message = await verify(raw, certs, [DEFAULT_TOPIC])  # genuine to the webhook
        assert message.type == "Notification"
        event = json.loads(message.body["Message"])
        to = event["mail"]["destination"][0]
        assert event["mail"]["messageId"] == ids[to]
        assert event["mail"]["tags"] == {
            "message_id": ["42"],
            "ses:configuration-set": ["marketing"],
        }
        kind = event["eventType"]
        sub = event["bounce"]["bounceSubType"] if kind == "Bounce" else None
        if kind == "Bounce":
            assert event["bounce"]["bounceType"] == "Permanent"
            assert event["bounce"]["bouncedRecipients"][0]["emailAddress"] == to
        if kind == "Complaint":
            assert event["complaint"]["complainedRecipients"] == [{"emailAddress": to}]
        if kind == "Delivery":
            assert event["delivery"]["recipients"] == [to]
        seen[to].append((kind, sub))
    assert {k: sorted(v, key=str) for k, v in seen.items()} == {
        k: sorted(v, key=str) for k, v in expected.items()
    }


async def test_deliver_all_and_retries(webhook: Webhook, tmp_path: Path) -> None:
    webhook.fail_first = 2  # the webhook is briefly away: published anyway, as SNS retries
    with _simulating(webhook, tmp_path, "--deliver-all") as proc:
        client = ses(proc.url)
        await asyncio.to_thread(client.send_email, **email("reader@example.test"))
        bodies = await webhook.wait(1)
        deadline = time.monotonic() + 10
        while True:
            stats = proc.control.simulator()
            if stats["published"] >= 1 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
    event = json.loads(bodies[0]["Message"])
    assert event["eventType"] == "Delivery"
    assert event["delivery"]["recipients"] == ["reader@example.test"]
    assert stats["published"] == 1 and stats["deliver_all"] is True


def test_signing_files_are_made_once(tmp_path: Path) -> None:
    from mailer.local.simulator import ensure_signing_files

    first = ensure_signing_files(tmp_path)
    again = ensure_signing_files(tmp_path)
    assert first == again
    assert [p.name for p in (tmp_path / "certs").iterdir()] == [first.cert_name]
    assert first.cert_name.startswith("SimpleNotificationService-")
    assert first.cert_url().startswith("https://sns.us-east-1.amazonaws.com/")
