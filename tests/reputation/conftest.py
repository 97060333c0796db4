"""The API configured for SNS, as in tests/webhook, so events arrive as signed notifications."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mailer.config import Settings
from tests.fixtures.sns import TOPIC, Signer, sns_signer

__all__ = ["sns_signer"]


@pytest.fixture
def sns_settings(settings: Settings, sns_signer: Signer) -> Settings:
    return settings.model_copy(
        update={"sns_cert_dir": sns_signer.cert_dir, "sns_topic_arns": [TOPIC]}
    )


@pytest.fixture
async def app(sns_settings: Settings, engine: AsyncEngine) -> AsyncIterator[object]:
    from mailer.app import create_app

    application = create_app(sns_settings)
    async with application.router.lifespan_context(application):
        yield application
