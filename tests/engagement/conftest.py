"""The API configured for SNS, and SES Open/Click events as AWS documents them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tests.fixtures.sns import Signer, sns_app, sns_signer
from tests.webhook.conftest import app, post, process, seed_sent, sns_settings, stats

__all__ = ["app", "post", "process", "seed_sent", "sns_app", "sns_settings", "sns_signer", "stats"]

# user agents as mail clients, Apple's proxy and scanners send them
IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 10_3_3 like Mac OS X) AppleWebKit/603.3.8"
    " (KHTML, like Gecko) Mobile/14G60"
)  # AWS's documented Open event
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/60.0.3112.90 Safari/537.36"
)  # AWS's documented Click event
APPLE_PROXY = "Mozilla/5.0"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
SCANNER = "Barracuda Sentinel (EE)"


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _mail(ses_id: str, to: str, sent: datetime) -> dict[str, Any]:
    # the "mail" object of AWS's documented event examples
    return {
        "timestamp": _stamp(sent),
        "source": "Sender Name <sender@example.com>",
        "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/sender@example.com",
        "sendingAccountId": "123456789012",
        "messageId": ses_id,
        "destination": [to],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "sender@example.com"},
            {"name": "To", "value": to},
            {"name": "Subject", "value": "Message sent from Amazon SES"},
        ],
        "commonHeaders": {
            "from": ["sender@example.com"],
            "to": [to],
            "messageId": ses_id,
            "subject": "Message sent from Amazon SES",
        },
        "tags": {
            "ses:configuration-set": ["marketing"],
            "ses:source-ip": ["192.0.2.0"],
            "ses:from-domain": ["example.com"],
            "ses:caller-identity": ["ses_user"],
        },
    }


def open_event(ses_id: str, to: str, sent: datetime, after_s: float, ua: str) -> dict[str, Any]:
    return {
        "eventType": "Open",
        "mail": _mail(ses_id, to, sent),
        "open": {
            "ipAddress": "192.0.2.1",
            "timestamp": _stamp(sent + timedelta(seconds=after_s)),
            "userAgent": ua,
        },
    }


def click_event(
    ses_id: str, to: str, sent: datetime, after_s: float, ua: str, link: str
) -> dict[str, Any]:
    return {
        "eventType": "Click",
        "mail": _mail(ses_id, to, sent),
        "click": {
            "ipAddress": "192.0.2.1",
            "link": link,
            "linkTags": {"samplekey0": ["samplevalue0"], "samplekey1": ["samplevalue1"]},
            "timestamp": _stamp(sent + timedelta(seconds=after_s)),
            "userAgent": ua,
        },
    }


def delivery_event(ses_id: str, to: str, sent: datetime) -> dict[str, Any]:
    return {
        "eventType": "Delivery",
        "mail": _mail(ses_id, to, sent),
        "delivery": {
            "timestamp": _stamp(sent + timedelta(seconds=1)),
            "processingTimeMillis": 1000,
            "recipients": [to],
            "smtpResponse": "250 2.6.0 Message received",
            "reportingMTA": "mta.example.com",
        },
    }


def sent_at() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


async def deliver(
    client: httpx.AsyncClient,
    signer: Signer,
    sessionmaker: async_sessionmaker[AsyncSession],
    events: list[dict[str, Any]],
) -> None:
    """Post the events as signed SNS notifications, then run the events worker."""
    for event in events:
        assert (await post(client, signer.notification(event))).status_code == 200
    await process(sessionmaker)


async def rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as conn:
        return list(await conn.execute(text(sql), params))
