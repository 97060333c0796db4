from tests.reputation.conftest import app, sns_settings, sns_signer

__all__ = ["app", "sns_settings", "sns_signer"]
