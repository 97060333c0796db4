"""The API configured for SNS, as in tests/webhook, so events arrive as signed notifications."""

from __future__ import annotations

import pytest

from tests.fixtures.sns import sns_app, sns_settings, sns_signer

__all__ = ["sns_app", "sns_settings", "sns_signer"]


@pytest.fixture
async def app(sns_app: object) -> object:
    return sns_app
