"""POST /webhooks/sns: genuine messages are stored once; every bad one is a 4xx that
changes nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from mailer.config import Settings
from tests.fixtures.sns import (
    CERT_NAME,
    OTHER_TOPIC,
    Signer,
    ses_event,
)
from tests.webhook.conftest import post, snapshot


def delivery() -> dict[str, Any]:
    return ses_event("Delivery", "0100-unknown", ["a@example.test"])


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("subject", [None, "Amazon SES Email Event Notification"])
async def test_genuine_notification_is_stored_once(
    client, engine, sns_signer: Signer, version, subject
) -> None:
    message = sns_signer.notification(delivery(), version=version, subject=subject)
    first = await post(client, message)
    assert first.status_code == 200, first.text
    assert first.json() == {"stored": True, "type": "Notification"}
    again = await post(client, message)  # an SNS retry: same MessageId
    assert again.status_code == 200
    assert again.json()["stored"] is False
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT sns_message_id, topic_arn, type, processed_at FROM sns_notifications")
            )
        ).all()
    assert [(r[0], r[2], r[3]) for r in rows] == [(message["MessageId"], "Notification", None)]


def _tampered(signer: Signer) -> dict[str, Any]:
    message = signer.notification(delivery())
    other = ses_event("Bounce", "0100-unknown", ["a@example.test"])
    return {**message, "Message": json.dumps(other)}


def _subject_added(signer: Signer) -> dict[str, Any]:
    return {**signer.notification(delivery()), "Subject": "added after signing"}


def _other_key(signer: Signer) -> dict[str, Any]:
    message = signer.notification(delivery())
    unsigned = {k: v for k, v in message.items() if k not in ("Signature", "SignatureVersion")}
    return signer.sign(unsigned, "2", key=signer.other_key)


def _cert(url: str):  # type: ignore[no-untyped-def]
    return lambda signer: signer.notification(delivery(), cert_url=url)


BAD_403 = {
    "tampered message": _tampered,
    "subject added": _subject_added,
    "other key": _other_key,
    "look-alike host suffix": _cert(f"https://sns.us-east-1.amazonaws.com.evil.com/{CERT_NAME}"),
    "look-alike host prefix": _cert(f"https://evilsns.us-east-1.amazonaws.com/{CERT_NAME}"),
    "non-aws host": _cert(f"https://example.com/{CERT_NAME}"),
    "user in url": _cert(f"https://sns.us-east-1.amazonaws.com@evil.com/{CERT_NAME}"),
    "port in url": _cert(f"https://sns.us-east-1.amazonaws.com:8443/{CERT_NAME}"),
    "not a pem": _cert("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123.txt"),
    "other path": _cert(f"https://sns.us-east-1.amazonaws.com/certs/{CERT_NAME}"),
    "path with query": _cert(f"https://sns.us-east-1.amazonaws.com/{CERT_NAME}?x=1"),
    "http": _cert(f"http://sns.us-east-1.amazonaws.com/{CERT_NAME}"),
    "topic not allowed": lambda s: s.notification(delivery(), topic=OTHER_TOPIC),
    "stale timestamp": lambda s: s.notification(
        delivery(), timestamp=datetime.now(UTC) - timedelta(hours=2, minutes=1)
    ),
    "far future timestamp": lambda s: s.notification(
        delivery(), timestamp=datetime.now(UTC) + timedelta(hours=3)
    ),
    "unknown signature version": lambda s: {**s.notification(delivery()), "SignatureVersion": "3"},
    "signature not base64": lambda s: {**s.notification(delivery()), "Signature": "%%%"},
    "confirmation for a foreign topic": lambda s: s.confirmation(topic=OTHER_TOPIC),
    "confirmation leading elsewhere": lambda s: s.confirmation(
        subscribe_url="https://evil.example/?Action=ConfirmSubscription"
    ),
}

BAD_400 = {
    "malformed json": lambda s: b'{"Type": "Notification",',
    "not an object": lambda s: b"[1, 2]",
    "raw message delivery": lambda s: delivery(),
    "unknown type": lambda s: {**s.notification(delivery()), "Type": "Telegram"},
    "missing signature": lambda s: {
        k: v for k, v in s.notification(delivery()).items() if k != "Signature"
    },
    "number as message id": lambda s: {**s.notification(delivery()), "MessageId": 7},
}


@pytest.mark.parametrize("case", sorted(BAD_403))
async def test_forged_or_unacceptable_is_403_and_changes_nothing(
    client, engine, sns_signer, case
) -> None:
    before = await snapshot(engine)
    r = await post(client, BAD_403[case](sns_signer))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "sns_rejected"
    assert await snapshot(engine) == before


@pytest.mark.parametrize("case", sorted(BAD_400))
async def test_malformed_is_400_and_changes_nothing(client, engine, sns_signer, case) -> None:
    before = await snapshot(engine)
    r = await post(client, BAD_400[case](sns_signer))
    assert r.status_code == 400, r.text
    assert set(r.json()["error"]) == {"code", "message", "details"}
    assert await snapshot(engine) == before


async def test_oversize_body_is_413_and_changes_nothing(
    client, engine, sns_settings, sns_signer
) -> None:
    before = await snapshot(engine)
    big = ses_event("Delivery", "0100-unknown", ["a@example.test"])
    big["padding"] = "x" * sns_settings.sns_max_body_bytes
    r = await post(client, sns_signer.notification(big))
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "too_large"
    assert await snapshot(engine) == before


async def test_expired_certificate_is_refused(
    client, engine, sns_signer, tmp_path, sns_settings: Settings
) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    from mailer.app import create_app

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(sns_signer.key.public_key())
        .serial_number(1)
        .not_valid_before(now - timedelta(days=30))
        .not_valid_after(now - timedelta(days=1))
        .sign(sns_signer.key, hashes.SHA256())
    )
    (tmp_path / CERT_NAME).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    app = create_app(sns_settings.model_copy(update={"sns_cert_dir": tmp_path}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await post(c, sns_signer.notification(delivery()))
    assert r.status_code == 403
    assert "not valid now" in r.json()["error"]["message"]
    assert (await snapshot(engine))["notifications"] == 0


class AwsSns:
    """Amazon SNS as seen from the webhook: the confirmation GET (AWS cannot run here)."""

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, text="<ConfirmSubscriptionResponse/>")


async def test_subscription_for_allowed_topic_is_confirmed(app, client, engine, sns_signer) -> None:
    aws = AwsSns()
    app.state.sns_http = httpx.AsyncClient(transport=httpx.MockTransport(aws))
    message = sns_signer.confirmation(version="1")
    r = await post(client, message)
    assert r.status_code == 200, r.text
    assert [str(q.url) for q in aws.requests] == [str(httpx.URL(message["SubscribeURL"]))]
    assert (await snapshot(engine))["notifications"] == 1


async def test_subscription_for_foreign_topic_is_never_confirmed(
    app, client, engine, sns_signer
) -> None:
    aws = AwsSns()
    app.state.sns_http = httpx.AsyncClient(transport=httpx.MockTransport(aws))
    r = await post(client, sns_signer.confirmation(topic=OTHER_TOPIC))
    assert r.status_code == 403
    assert aws.requests == []
    assert (await snapshot(engine))["notifications"] == 0


async def test_failed_confirmation_is_not_stored(app, client, engine, sns_signer) -> None:
    aws = AwsSns(status=500)
    app.state.sns_http = httpx.AsyncClient(transport=httpx.MockTransport(aws))
    r = await post(client, sns_signer.confirmation())
    assert r.status_code == 502
    assert (await snapshot(engine))["notifications"] == 0


async def test_unsubscribe_confirmation_is_stored_not_followed(
    app, client, engine, sns_signer
) -> None:
    aws = AwsSns()
    app.state.sns_http = httpx.AsyncClient(transport=httpx.MockTransport(aws))
    r = await post(client, sns_signer.confirmation(kind="UnsubscribeConfirmation"))
    assert r.status_code == 200
    assert aws.requests == []


async def test_unstorable_notification_is_5xx(sns_settings, sns_signer, redis) -> None:
    """The database is away: 503, so SNS delivers the notification again."""
    from mailer.app import create_app

    away = sns_settings.model_copy(
        update={"database_url": "postgresql+asyncpg://root@127.0.0.1:1/nowhere"}
    )
    app = create_app(away)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            r = await post(c, sns_signer.notification(delivery()))
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "unavailable"
