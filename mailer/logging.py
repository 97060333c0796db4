"""structlog set-up; secrets and keys are never logged."""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

import structlog

from mailer.config import Settings

_REDACT = {
    "authorization",
    "api_key",
    "key",
    "secret",
    "password",
    "token",
    "cookie",
    "unsubscribe_url",
    "subscribe_url",
    "secret_key",
    "secret_keys",
    "metrics_token",
}
# secrets inside any logged text: API keys (mk_<prefix>_<secret>), bearer credentials,
# unsubscribe links (their token unsubscribes whoever holds it), SNS subscription tokens,
# session cookies of the dashboard and the console, the console's one-time links
_PATTERNS = [
    (re.compile(r"mk_[0-9a-f]{1,16}_[A-Za-z0-9_\-]+"), "mk_[redacted]"),
    (re.compile(r"(?i)(bearer\s+)\S+"), r"\1[redacted]"),
    (re.compile(r"(/unsubscribe/)[^\s\"'<>?#]+"), r"\1[redacted]"),
    # the console's one-time links (whoever holds one sets the password)
    (re.compile(r"(/console/(?:invitation|reset)/)[^\s\"'<>?#]+"), r"\1[redacted]"),
    (
        re.compile(
            r"(?i)([?&](?:token|signature|x-amz-signature|x-amz-security-token)=)[^&\s\"']+"
        ),
        r"\1[redacted]",
    ),
    (re.compile(r"(mailer_(?:session|login|console|console_login)=)[^;\s\"']+"), r"\1[redacted]"),
]


def redact_text(value: str) -> str:
    for pattern, replacement in _PATTERNS:
        value = pattern.sub(replacement, value)
    return value


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {
            k: "[redacted]" if str(k).lower() in _REDACT else _scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: secret fields blanked, secrets inside any text rewritten."""
    for name in list(event):
        if name.lower() in _REDACT:
            event[name] = "[redacted]"
        else:
            event[name] = _scrub(event[name])
    return event


def _redacting_factory(make: Any) -> Any:
    """A log record factory that redacts records of the standard library (uvicorn's access
    log, arq) as they are made, whatever handlers they go to later."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = make(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_scrub(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = _scrub(record.args)
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    return factory


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(message)s")
    if not getattr(logging.getLogRecordFactory(), "redacting", False):
        logging.setLogRecordFactory(_redacting_factory(logging.getLogRecordFactory()))
    renderer = (
        structlog.processors.JSONRenderer()
        if settings.log_json
        # plain tracebacks: rich ones with every frame's locals take seconds to render,
        # and the event loop (with the SES calls in flight) waits for them
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            structlog.processors.format_exc_info,
            redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
