"""Each mail class's configuration set, checked when a worker starts and at every account
poll: a set SES does not know is one clear error in the log, and its class sends nothing
(campaign mail waits in the queue, transactional mail is held, nothing fails) until the
set exists, instead of every first send discovering it."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from mailer.config import Settings

log = structlog.get_logger(__name__)


async def missing_sets(settings: Settings, transport: Any) -> dict[str, str]:
    """mail class -> why it may not send, for each class whose set is missing somewhere."""
    missing: dict[str, str] = {}
    for mail_class, name in settings.configuration_sets.items():
        absent = [
            region
            for region in settings.regions
            if await transport.configuration_set_exists(region, name) is False
        ]
        if absent:
            missing[mail_class] = (
                f"configuration set {name} of mail class {mail_class} does not exist in "
                f"{', '.join(absent)}: run `mailer ses setup` or set MAILER_CONFIGURATION_SETS"
            )
    return missing


async def check_sets(settings: Settings, transport: Any, sender: Any) -> None:
    """Block the classes whose set is missing, unblock those whose set appeared; log each
    change once."""
    missing = await missing_sets(settings, transport)
    for mail_class, reason in missing.items():
        if sender.guard.blocked.get(mail_class) != reason:
            log.error("configuration_set_missing", mail_class=mail_class, reason=reason)
    for mail_class in set(sender.guard.blocked) - set(missing):
        log.warning(
            "configuration_set_found",
            mail_class=mail_class,
            configuration_set=settings.configuration_sets.get(mail_class),
        )
    sender.guard.blocked = missing


async def check_sets_forever(settings: Settings, transport: Any, sender: Any) -> None:
    """Every ``account_poll_seconds`` (the first check ran at start-up)."""
    while True:
        await asyncio.sleep(settings.account_poll_seconds)
        try:
            await check_sets(settings, transport, sender)
        except Exception:  # noqa: BLE001 - the next round tries again
            log.warning("configuration_set_check_failed", exc_info=True)
