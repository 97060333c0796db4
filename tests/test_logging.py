"""Logs are JSON with the bound ids; no key, token or unsubscribe URL ever appears."""

from __future__ import annotations

import json
import logging

import structlog

from mailer.config import Settings
from mailer.logging import configure_logging

KEY = "mk_0123456789ab_S3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3cr3tS3c"
UNSUB = "http://mailer.test/unsubscribe/MTIz.abcDEF-ghi_jkl"


def test_json_logs_carry_ids_and_no_secrets(settings: Settings, capsys) -> None:  # type: ignore[no-untyped-def]
    configure_logging(settings.model_copy(update={"log_json": True, "log_level": "INFO"}))
    log = structlog.get_logger("test-redaction")
    with structlog.contextvars.bound_contextvars(campaign_id=7, message_id=42):
        log.warning(
            f"sending with {KEY} to {UNSUB}",
            authorization=f"Bearer {KEY}",
            url=UNSUB,
            headers={"List-Unsubscribe": f"<{UNSUB}>", "token": "x"},
            subscribe="https://sns.us-east-1.amazonaws.com/?Action=Confirm&Token=abc123",
        )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["campaign_id"] == 7 and record["message_id"] == 42
    assert record["level"] == "warning" and "timestamp" in record
    for secret in (KEY, "S3cr3t", "MTIz.abcDEF", "abc123"):
        assert secret not in line, secret
    assert record["authorization"] == "[redacted]"
    assert record["url"] == "http://mailer.test/unsubscribe/[redacted]"
    assert "mk_[redacted]" in record["event"]


def test_standard_library_records_are_redacted_too(settings: Settings, caplog) -> None:  # type: ignore[no-untyped-def]
    configure_logging(settings.model_copy(update={"log_json": True}))
    logging.getLogger("mailer.test.stdlib").warning(
        '"GET %s HTTP/1.1" 200', "/unsubscribe/MTIz.tok"
    )
    assert "/unsubscribe/[redacted]" in caplog.text and "MTIz.tok" not in caplog.text
