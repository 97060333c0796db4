"""The ops tests use the SNS-configured API, as tests/webhook do."""

from tests.fixtures.sns import sns_app, sns_settings, sns_signer
from tests.reputation.conftest import app

__all__ = ["app", "sns_app", "sns_settings", "sns_signer"]
