"""Amazon SNS message verification (SPEC 8): envelope, certificate URL, signature, topic, age.

Nothing here trusts the message before its signature is checked, and the certificate is
only looked for (in ``MAILER_SNS_CERT_DIR`` or on AWS) once its URL has passed the rules,
so a pre-seeded file can never stand in for a host that is not AWS.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailer.errors import Forbidden, MailerError

MESSAGE_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
MAX_AGE = timedelta(hours=2)

# the keys each type signs, in the order of its canonical string (AWS "Verifying the
# signatures of Amazon SNS messages"); Subject only when the notification has one
_SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
    ),
}
_OPTIONAL = {"Subject"}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {"1": hashes.SHA1, "2": hashes.SHA256}

# exactly sns.<region>.amazonaws.com or .amazonaws.com.cn: anchored, so look-alikes such
# as sns.us-east-1.amazonaws.com.evil.com or evilsns.us-east-1.amazonaws.com fail
_AWS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com(?:\.cn)?")
_CERT_PATH = re.compile(r"/SimpleNotificationService-[0-9a-f]+\.pem")


class Malformed(MailerError):
    """Not an SNS message at all: 400."""


class Rejected(Forbidden):
    """An SNS message that fails verification: 403."""

    code = "sns_rejected"


@dataclass(frozen=True, slots=True)
class SnsMessage:
    type: str
    message_id: str
    topic_arn: str
    body: dict[str, Any]


def parse(raw: bytes) -> dict[str, Any]:
    """The envelope as a dict, or :class:`Malformed` (400)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Malformed("the body is not JSON") from exc
    if not isinstance(body, dict):
        raise Malformed("the body is not a JSON object")
    if "Type" not in body and ("eventType" in body or "notificationType" in body):
        # raw message delivery posts the SES event alone, with nothing to verify
        raise Malformed("raw message delivery is not accepted: turn it off on the subscription")
    kind = body.get("Type")
    if kind not in MESSAGE_TYPES:
        raise Malformed(f"unknown SNS message type {str(kind)[:64]!r}")
    for key in (*_SIGNED_KEYS[kind], "SignatureVersion", "Signature", "SigningCertURL"):
        if key in _OPTIONAL:
            continue
        if not isinstance(body.get(key), str):
            raise Malformed(f"{key} is missing or not a string")
    if "Subject" in body and not isinstance(body["Subject"], str):
        raise Malformed("Subject is not a string")
    return body


def canonical(body: dict[str, Any]) -> bytes:
    """The string SNS signs: ``key\\nvalue\\n`` for each signed key present, in order."""
    parts = []
    for key in _SIGNED_KEYS[body["Type"]]:
        if key in body:
            parts.append(f"{key}\n{body[key]}\n")
    return "".join(parts).encode()


def check_url(url: str, *, path: re.Pattern[str] | None = _CERT_PATH) -> None:
    """https, an AWS SNS host exactly, no port, user or query tricks; the path if given."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Rejected("not a valid URL") from exc
    if parts.scheme != "https":
        raise Rejected("the URL is not https")
    if parts.username or parts.password or port not in (None, 443):
        raise Rejected("the URL carries a user or a port")
    if not _AWS_HOST.fullmatch(parts.netloc.split(":")[0]):
        raise Rejected("the URL's host is not an Amazon SNS host")
    if path is not None and (parts.query or parts.fragment or not path.fullmatch(parts.path)):
        raise Rejected("the certificate path is not /SimpleNotificationService-<hex>.pem")


class CertStore:
    """Public keys by certificate URL: cached, read from the cert dir or fetched from AWS."""

    def __init__(
        self,
        cert_dir: Path | None,
        http: httpx.AsyncClient,
        *,
        timeout: float = 5.0,
        max_bytes: int = 65_536,
    ) -> None:
        self.cert_dir = cert_dir
        self.http = http
        self.timeout = timeout
        self.max_bytes = max_bytes
        self._keys: dict[str, rsa.RSAPublicKey] = {}

    async def key(self, url: str) -> rsa.RSAPublicKey:
        cached = self._keys.get(url)
        if cached is not None:
            return cached
        check_url(url)
        pem = self._local(url) or await self._fetch(url)
        try:
            cert = x509.load_pem_x509_certificate(pem)
        except ValueError as exc:
            raise Rejected("the signing certificate is not a PEM certificate") from exc
        now = datetime.now(UTC)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise Rejected("the signing certificate is not valid now")
        public = cert.public_key()
        if not isinstance(public, rsa.RSAPublicKey):
            raise Rejected("the signing certificate's key is not RSA")
        if len(self._keys) > 64:  # SNS rotates rarely; keep the cache bounded anyway
            self._keys.clear()
        self._keys[url] = public
        return public

    def _local(self, url: str) -> bytes | None:
        if self.cert_dir is None:
            return None
        path = self.cert_dir / urlsplit(url).path.rsplit("/", 1)[-1]
        return path.read_bytes() if path.is_file() else None

    async def _fetch(self, url: str) -> bytes:
        try:
            async with self.http.stream(
                "GET", url, timeout=self.timeout, follow_redirects=False
            ) as answer:
                if answer.status_code != 200:
                    raise Rejected(f"the signing certificate answered {answer.status_code}")
                chunks, size = [], 0
                async for chunk in answer.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise Rejected("the signing certificate is too large")
                    chunks.append(chunk)
        except httpx.HTTPError as exc:
            raise Rejected(f"the signing certificate could not be fetched: {exc!r}") from exc
        return b"".join(chunks)


def _timestamp(value: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Malformed("Timestamp is not an ISO 8601 time") from exc
    if stamp.tzinfo is None:
        raise Malformed("Timestamp has no time zone")
    return stamp


async def verify(
    raw: bytes, certs: CertStore, allowed_topics: list[str], now: datetime | None = None
) -> SnsMessage:
    """The verified message, or :class:`Malformed` (400) / :class:`Rejected` (403)."""
    body = parse(raw)
    algorithm = _HASHES.get(body["SignatureVersion"])
    if algorithm is None:
        raise Rejected(f"unknown SignatureVersion {body['SignatureVersion'][:8]!r}")
    if body["TopicArn"] not in allowed_topics:
        raise Rejected("the topic is not allowed (MAILER_SNS_TOPIC_ARNS)")
    stamp = _timestamp(body["Timestamp"])
    if abs((now or datetime.now(UTC)) - stamp) > MAX_AGE:
        raise Rejected("the message is older than two hours (or from the future)")
    try:
        signature = _b64decode(body["Signature"])
    except ValueError as exc:
        raise Rejected("the signature is not base64") from exc
    key = await certs.key(body["SigningCertURL"])
    try:
        key.verify(signature, canonical(body), padding.PKCS1v15(), algorithm())
    except InvalidSignature as exc:
        raise Rejected("the signature does not match") from exc
    if body["Type"] != "Notification":
        # the confirmation link is followed later: it must lead to SNS itself
        check_url(body["SubscribeURL"], path=None)
    return SnsMessage(body["Type"], body["MessageId"], body["TopicArn"], body)


def _b64decode(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(str(exc)) from exc
