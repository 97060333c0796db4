"""structlog set-up; secrets and keys are never logged."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import structlog

from mailer.config import Settings

_REDACT = {"authorization", "api_key", "key", "secret", "password", "token"}


def _redact(_: object, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in list(event):
        if name.lower() in _REDACT:
            event[name] = "[redacted]"
    return event


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(message)s")
    renderer = (
        structlog.processors.JSONRenderer() if settings.log_json
        # plain tracebacks: rich ones with every frame's locals take seconds to render,
        # and the event loop (with the SES calls in flight) waits for them
        else structlog.dev.ConsoleRenderer(colors=False,
                                           exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso"),
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        cache_logger_on_first_use=True,
    )
