"""The local emulator receives unsubscribe mail as an SES receipt rule with an SNS action
would: a signed ``Received`` notification that our webhook accepts as genuine and the
events worker turns into the unsubscribe."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.config import Settings
from mailer.local.simulator import DEFAULT_TOPIC
from mailer.local.standin_client import StandinControl
from mailer.suppression.tokens import make_token
from mailer.webhook.tasks import drain_notifications
from tests.local.test_simulator import Webhook, _simulating, webhook
from tests.webhook.conftest import post, seed_sent

__all__ = ["webhook"]
INBOUND = "unsubscribe.mailer.test"


@pytest.fixture
def signing(tmp_path: Path) -> Path:
    return tmp_path / "sns"


@pytest.fixture
def inbound_settings(settings: Settings, signing: Path) -> Settings:
    return settings.model_copy(
        update={
            "sns_cert_dir": signing / "certs",
            "sns_topic_arns": [DEFAULT_TOPIC],
            "inbound_unsubscribe_domain": INBOUND,
        }
    )


@pytest.fixture
async def app(inbound_settings: Settings, engine: AsyncEngine) -> AsyncIterator[object]:
    from mailer.app import create_app

    application = create_app(inbound_settings)
    async with application.router.lifespan_context(application):
        yield application


async def test_the_emulator_delivers_an_unsubscribe_mail_to_the_webhook(
    client, admin, engine, sessionmaker, webhook: Webhook, signing: Path, inbound_settings
) -> None:
    await seed_sent(client, admin, engine, ["ann@example.test"])
    async with engine.connect() as conn:
        message_id = (await conn.execute(text("SELECT id FROM messages"))).scalar_one()
    token = make_token(inbound_settings.secret_key, message_id)
    with _simulating(webhook, signing) as proc:
        control = StandinControl(proc.url)
        await asyncio.to_thread(
            control.receive, [f"unsubscribe+{token}@{INBOUND}"], f"unsubscribe-{token}"
        )
        (notification,) = await webhook.wait(1)
        control.close()
    r = await post(client, webhook.bodies[0])  # the emulator's bytes, as SNS posts them
    assert r.status_code == 200, r.text
    assert notification["TopicArn"] == DEFAULT_TOPIC
    await drain_notifications(sessionmaker, 500, settings=inbound_settings)
    async with engine.connect() as conn:
        status = (await conn.execute(text("SELECT status FROM contacts"))).scalar_one()
    assert status == "unsubscribed"
