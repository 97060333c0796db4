"""Unsubscribes received by mail: the ``mailto:`` of ``List-Unsubscribe`` made real.

The mailto (:func:`mailer.deliverability.headers.unsubscribe_mailto`) is
``unsubscribe+<token>@<MAILER_INBOUND_UNSUBSCRIBE_DOMAIN>?subject=unsubscribe-<token>``: a
domain of its own whose MX points to SES inbound (``mailer ses setup
--inbound-unsubscribe`` makes the receipt rule and prints the MX record; the From domain's
own MX, where people's replies go, is never touched). SES receives the mail and publishes
a ``Received`` notification to the SNS topic; the webhook verifies and stores it like
every notification, and the events worker hands it here. A token found in the recipient
address or the subject is read as the unsubscribe link's token: a genuine one
unsubscribes exactly as the link does (once; again changes nothing), a forged or unknown
one changes nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.errors import NotFound
from mailer.suppression import service as suppression
from mailer.suppression.tokens import read_token

log = structlog.get_logger(__name__)

RECEIVED = "Received"
LOCAL_PART = "unsubscribe"
# a token: the message id in hex, a dot, the MAC in base64url (mailer.suppression.tokens)
_TOKEN_SHAPE = r"[0-9a-f]{1,16}\.[A-Za-z0-9_-]{16,64}"  # noqa: S105 - a regex, not a secret
_IN_ADDRESS = re.compile(rf"^{LOCAL_PART}\+({_TOKEN_SHAPE})@", re.I)
_IN_SUBJECT = re.compile(rf"\bunsubscribe-({_TOKEN_SHAPE})(?![A-Za-z0-9_-])")
MAX_TOKENS = 10  # per received message: a message naming more is someone's experiment


def is_received(message: object) -> bool:
    """An SES receipt notification (``notificationType: Received``)."""
    return isinstance(message, dict) and message.get("notificationType") == RECEIVED


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def tokens_of(message: dict[str, Any]) -> list[str]:
    """The unsubscribe tokens a received message carries: in the address it was sent to,
    or in its subject (mail clients keep the mailto's ``subject``)."""
    mail, receipt = _dict(message.get("mail")), _dict(message.get("receipt"))
    addresses = [*_list(mail.get("destination")), *_list(receipt.get("recipients"))]
    found = [
        m.group(1)
        for address in addresses
        if isinstance(address, str) and (m := _IN_ADDRESS.match(address.strip()))
    ]
    subject = _dict(mail.get("commonHeaders")).get("subject")
    if isinstance(subject, str):
        found += _IN_SUBJECT.findall(subject)
    return list(dict.fromkeys(found))[:MAX_TOKENS]


async def apply(session: AsyncSession, keys: Sequence[str], message: dict[str, Any]) -> int:
    """Unsubscribe the recipients named by the genuine tokens of a received message;
    how many were unsubscribed now (0 for forged, unknown or already used tokens)."""
    done = 0
    for token in tokens_of(message):
        if read_token(keys, token) is None:
            log.info("inbound_unsubscribe_refused", reason="not a genuine token")
            continue
        try:
            done += await suppression.unsubscribe(session, keys, token, "mail")
        except NotFound:
            log.info("inbound_unsubscribe_refused", reason="no such message")
    return done
