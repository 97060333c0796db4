"""Amazon SNS message verification: envelope, certificate URL, signature, topic, age.

Nothing here trusts the message before its signature is checked, and the certificate is
only looked for (in ``MAILER_SNS_CERT_DIR`` or on AWS) once its URL has passed the rules,
so a pre-seeded file can never stand in for a host that is not AWS. Fetches from AWS are
few whatever arrives: one at a time per URL, at most ``FETCHES_PER_MINUTE`` (a flood of
messages naming unknown certificates costs that many fetches, and the rest are told to
come back later: 503), and a URL that failed is not fetched again for a while (negative
cache). A certificate is used only within its validity, cached or not.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import structlog
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailer.errors import Forbidden, MailerError, Unavailable

log = structlog.get_logger(__name__)

MESSAGE_TYPES = ("Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation")
MAX_AGE = timedelta(hours=2)

# the keys each type signs, in the order of its canonical string (AWS "Verifying the
# signatures of Amazon SNS messages"); Subject only when the notification has one
_CONFIRMATION_KEYS = (
    "Message",
    "MessageId",
    "SubscribeURL",
    "Timestamp",
    "Token",
    "TopicArn",
    "Type",
)
SIGNED_KEYS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": _CONFIRMATION_KEYS,
    "UnsubscribeConfirmation": _CONFIRMATION_KEYS,
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


class CertUnavailable(Unavailable):
    """The signing certificate cannot be had now (fetch budget spent, AWS not answering):
    503, so that SNS delivers the message again later."""

    code = "sns_certificate_unavailable"


# fetches from AWS: a bucket of this many, refilled at this rate
FETCHES_PER_MINUTE = 10
# how long a certificate URL that failed is refused without a fetch: its certificate was
# bad (403) or AWS did not answer (503; shorter, as SNS retries a 503 for a minute or so)
REJECTED_SECONDS = 300.0
UNAVAILABLE_SECONDS = 30.0
_MAX_CACHED = 64  # certificates (SNS rotates rarely)
_MAX_FAILED = 1024  # failed URLs remembered


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
        raise Malformed(f"unknown SNS message type: {', '.join(MESSAGE_TYPES)} are accepted")
    for key in (*SIGNED_KEYS[kind], "SignatureVersion", "Signature", "SigningCertURL"):
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
    for key in SIGNED_KEYS[body["Type"]]:
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


@dataclass(frozen=True, slots=True)
class _Cert:
    key: rsa.RSAPublicKey
    not_before: datetime
    not_after: datetime


class CertStore:
    """Public keys by certificate URL: read from the cert dir or fetched from AWS, cached
    with their validity; fetches rate-limited and failures remembered (module docstring)."""

    def __init__(
        self,
        cert_dir: Path | None,
        http: httpx.AsyncClient,
        *,
        timeout: float = 5.0,
        max_bytes: int = 65_536,
        fetches_per_minute: float = FETCHES_PER_MINUTE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cert_dir = cert_dir
        self.http = http
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.fetches_per_minute = fetches_per_minute
        self.clock = clock
        self.fetches = 0  # fetches from AWS begun (for the operator and tests)
        self._certs: dict[str, _Cert] = {}
        self._failed: dict[str, tuple[float, MailerError]] = {}  # url -> (until, the error)
        self._loading: dict[str, asyncio.Future[_Cert]] = {}
        self._tokens = float(fetches_per_minute)
        self._refilled = clock()

    async def key(self, url: str, now: datetime | None = None) -> rsa.RSAPublicKey:
        """The public key of the certificate at ``url``, or :class:`Rejected` (403) /
        :class:`CertUnavailable` (503). ``now``: the time the certificate must be valid at."""
        cert = self._certs.get(url)
        if cert is None:
            check_url(url)
            cert = await self._load(url)
        if not cert.not_before <= (now or datetime.now(UTC)) <= cert.not_after:
            raise Rejected("the signing certificate is not valid now")
        return cert.key

    async def _load(self, url: str) -> _Cert:
        failed = self._failed.get(url)
        if failed is not None:
            if failed[0] > self.clock():
                raise failed[1]
            del self._failed[url]
        # one read per URL at a time: the requests that arrive meanwhile share it
        loading = self._loading.get(url)
        if loading is None:
            loading = asyncio.ensure_future(self._read(url))
            self._loading[url] = loading
            loading.add_done_callback(lambda _: self._loading.pop(url, None))
        return await asyncio.shield(loading)

    async def _read(self, url: str) -> _Cert:
        try:
            pem = self._local(url)
            if pem is None:
                self._spend_fetch()
                pem = await self._fetch(url)
            cert = _parse_cert(pem)
        except (Rejected, CertUnavailable) as exc:
            if not isinstance(exc, _OverBudget):  # nothing was fetched: nothing learnt
                self._remember_failure(url, exc)
            raise
        if len(self._certs) >= _MAX_CACHED:
            self._certs.clear()
        self._certs[url] = cert
        return cert

    def _spend_fetch(self) -> None:
        now = self.clock()
        rate = self.fetches_per_minute / 60.0
        self._tokens = min(self.fetches_per_minute, self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens < 1.0:
            raise _OverBudget("too many signing certificates to fetch just now; try again later")
        self._tokens -= 1.0
        self.fetches += 1

    def _remember_failure(self, url: str, exc: MailerError) -> None:
        now = self.clock()
        if len(self._failed) >= _MAX_FAILED:
            self._failed = {u: f for u, f in self._failed.items() if f[0] > now}
            if len(self._failed) >= _MAX_FAILED:
                self._failed.clear()
        seconds = UNAVAILABLE_SECONDS if isinstance(exc, CertUnavailable) else REJECTED_SECONDS
        self._failed[url] = (now + seconds, exc)

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
            # the details are for the log; the answer says no more than this
            log.warning("sns_certificate_fetch_failed", url=url, error=type(exc).__name__)
            raise CertUnavailable("the signing certificate could not be fetched") from exc
        return b"".join(chunks)


class _OverBudget(CertUnavailable):
    """The fetch budget is spent: refused before any connection, and not remembered."""


def _parse_cert(pem: bytes) -> _Cert:
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise Rejected("the signing certificate is not a PEM certificate") from exc
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise Rejected("the signing certificate's key is not RSA")
    return _Cert(public, cert.not_valid_before_utc, cert.not_valid_after_utc)


def _timestamp(value: str) -> datetime:
    try:
        stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise Malformed("Timestamp is not an ISO 8601 time") from exc
    if stamp.tzinfo is None:
        raise Malformed("Timestamp has no time zone")
    return stamp


async def verify(
    raw: bytes,
    certs: CertStore,
    allowed_topics: list[str],
    now: datetime | None = None,
    *,
    require_v2: bool = False,
) -> SnsMessage:
    """The verified message, or :class:`Malformed` (400) / :class:`Rejected` (403) /
    :class:`CertUnavailable` (503). ``require_v2``: SignatureVersion 1 (SHA1) is refused."""
    body = parse(raw)
    algorithm = _HASHES.get(body["SignatureVersion"])
    if algorithm is None:
        raise Rejected("unknown SignatureVersion: 1 or 2 are accepted")
    if require_v2 and body["SignatureVersion"] != "2":
        raise Rejected("SignatureVersion 1 is refused: only 2 (MAILER_SNS_REQUIRE_V2)")
    if body["TopicArn"] not in allowed_topics:
        raise Rejected("the topic is not allowed (MAILER_SNS_TOPIC_ARNS)")
    now = now or datetime.now(UTC)
    stamp = _timestamp(body["Timestamp"])
    if abs(now - stamp) > MAX_AGE:
        raise Rejected("the message is older than two hours (or from the future)")
    try:
        signature = _b64decode(body["Signature"])
    except ValueError as exc:
        raise Rejected("the signature is not base64") from exc
    key = await certs.key(body["SigningCertURL"], now)
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
