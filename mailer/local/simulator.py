"""SES's mailbox simulator, locally: events published as signed SNS notifications.

The stand-in calls :meth:`Simulator.accepted` for every message it accepts. Mail to
``success@``, ``bounce@``, ``complaint@``, ``suppressionlist@`` and ``ooto@`` the
simulator domain (labels such as ``bounce+x@`` included) gets the matching SES event,
published as SES event publishing would, as an SNS Notification signed (SignatureVersion 2)
with a local key whose certificate sits in ``MAILER_SNS_CERT_DIR``, POSTed to the webhook
shortly after the send. With ``deliver_all`` every other accepted recipient gets a Delivery.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

SIMULATOR_DOMAIN = "simulator.amazonses.com"
SIMULATOR_LOCALS = ("success", "bounce", "complaint", "suppressionlist", "ooto")
DEFAULT_TOPIC = "arn:aws:sns:us-east-1:000000000000:mailer-dev-ses-events"
ACCOUNT = "000000000000"


def simulator_kind(address: str) -> str | None:
    """``bounce`` for ``Bounce+label@simulator.amazonses.com``; None for other addresses."""
    local, _, domain = address.strip().lower().rpartition("@")
    if domain != SIMULATOR_DOMAIN:
        return None
    local = local.split("+", 1)[0]
    return local if local in SIMULATOR_LOCALS else None


# -- the local signing certificate -------------------------------------------------------


@dataclass(frozen=True)
class SigningFiles:
    key_path: Path
    cert_dir: Path
    cert_name: str

    def cert_url(self, region: str = "us-east-1") -> str:
        return f"https://sns.{region}.amazonaws.com/{self.cert_name}"


def self_signed(key: rsa.RSAPrivateKey, common_name: str, days: int) -> bytes:
    """A PEM certificate of ``key`` signed by itself, valid from yesterday for ``days``."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def ensure_signing_files(directory: Path) -> SigningFiles:
    """A key and its self-signed certificate under ``directory`` (made once, then reused).

    The certificate's file name is SNS's (``SimpleNotificationService-<hex>.pem``), so the
    webhook finds it in ``MAILER_SNS_CERT_DIR`` (``directory/certs``) instead of fetching it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / "sns-signing-key.pem"
    cert_dir = directory / "certs"
    cert_dir.mkdir(exist_ok=True)
    existing = sorted(cert_dir.glob("SimpleNotificationService-*.pem"))
    if key_path.is_file() and existing and _still_valid(existing[-1]):
        return SigningFiles(key_path, cert_dir, existing[-1].name)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = self_signed(key, "sns.amazonaws.com (local)", days=365)
    for old in existing:
        old.unlink()
    cert_name = f"SimpleNotificationService-{hashlib.sha256(pem).hexdigest()[:32]}.pem"
    (cert_dir / cert_name).write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)
    return SigningFiles(key_path, cert_dir, cert_name)


def _still_valid(path: Path) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        return False
    return cert.not_valid_after_utc > datetime.now(UTC) + timedelta(days=1)


# -- SES events and their SNS envelope ---------------------------------------------------

_SIGNED = ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type")


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _mail(
    request: dict[str, Any], ses_message_id: str, region: str, sent_at: datetime
) -> dict[str, Any]:
    destination = request.get("Destination") or {}
    recipients = [
        *destination.get("ToAddresses", []),
        *destination.get("CcAddresses", []),
        *destination.get("BccAddresses", []),
    ]
    tags: dict[str, list[str]] = {}
    for tag in request.get("EmailTags") or []:
        tags.setdefault(str(tag.get("Name")), []).append(str(tag.get("Value")))
    if request.get("ConfigurationSetName"):
        tags["ses:configuration-set"] = [str(request["ConfigurationSetName"])]
    source = str(request.get("FromEmailAddress") or "")
    return {
        "timestamp": _stamp(sent_at),
        "source": source,
        "sourceArn": f"arn:aws:ses:{region}:{ACCOUNT}:identity/{source.rpartition('@')[2]}",
        "sendingAccountId": ACCOUNT,
        "messageId": ses_message_id,
        "destination": recipients,
        "headersTruncated": False,
        "tags": tags,
    }


def events_for(
    request: dict[str, Any],
    ses_message_id: str,
    region: str,
    *,
    deliver_all: bool = False,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """The SES events (event-publishing format) the simulator publishes for one send."""
    now = now or datetime.now(UTC)
    mail = _mail(request, ses_message_id, region, now)
    stamp = _stamp(now + timedelta(milliseconds=300))
    out: list[dict[str, Any]] = []
    for recipient in mail["destination"]:
        kind = simulator_kind(recipient)
        if kind in ("success", "ooto", "complaint") or (kind is None and deliver_all):
            out.append(
                {
                    "eventType": "Delivery",
                    "mail": mail,
                    "delivery": {
                        "timestamp": stamp,
                        "processingTimeMillis": 300,
                        "recipients": [recipient],
                        "smtpResponse": "250 2.6.0 Message received",
                        "reportingMTA": "a8-70.smtp-out.amazonses.com",
                    },
                }
            )
        if kind in ("bounce", "suppressionlist"):
            sub = "General" if kind == "bounce" else "OnAccountSuppressionList"
            out.append(
                {
                    "eventType": "Bounce",
                    "mail": mail,
                    "bounce": {
                        "bounceType": "Permanent",
                        "bounceSubType": sub,
                        "bouncedRecipients": [
                            {
                                "emailAddress": recipient,
                                "action": "failed",
                                "status": "5.1.1",
                                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
                            }
                        ],
                        "timestamp": stamp,
                        "feedbackId": f"{uuid.uuid4()}-000000",
                        "reportingMTA": "dns; amazonses.com",
                    },
                }
            )
        if kind == "complaint":
            out.append(
                {
                    "eventType": "Complaint",
                    "mail": mail,
                    "complaint": {
                        "complainedRecipients": [{"emailAddress": recipient}],
                        "timestamp": stamp,
                        "feedbackId": f"{uuid.uuid4()}-000000",
                        "complaintFeedbackType": "abuse",
                        "userAgent": "Amazon SES Mailbox Simulator",
                        "arrivalDate": stamp,
                    },
                }
            )
    return out


def received_event(to: list[str], subject: str, sender: str, topic_arn: str) -> dict[str, Any]:
    """The ``Received`` notification of SES email receiving (SNS action), as AWS documents
    it: who sent it, to whom, its subject and SES's verdicts."""
    stamp = _stamp(datetime.now(UTC))
    passed = {"status": "PASS"}
    return {
        "notificationType": "Received",
        "mail": {
            "timestamp": stamp,
            "source": sender,
            "messageId": uuid.uuid4().hex,
            "destination": to,
            "headersTruncated": False,
            "commonHeaders": {"from": [sender], "to": to, "subject": subject},
        },
        "receipt": {
            "timestamp": stamp,
            "processingTimeMillis": 1,
            "recipients": to,
            "spamVerdict": passed,
            "virusVerdict": passed,
            "spfVerdict": passed,
            "dkimVerdict": passed,
            "dmarcVerdict": passed,
            "action": {"type": "SNS", "topicArn": topic_arn, "encoding": "UTF8"},
        },
    }


class Signer:
    """Signs SNS Notifications (SignatureVersion 2, SHA256withRSA) with the local key."""

    def __init__(self, files: SigningFiles, topic_arn: str = DEFAULT_TOPIC) -> None:
        key = serialization.load_pem_private_key(files.key_path.read_bytes(), password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("the SNS signing key must be RSA")
        self.key = key
        self.files = files
        self.topic_arn = topic_arn

    def notification(self, event: dict[str, Any], region: str = "us-east-1") -> bytes:
        message: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": self.topic_arn,
            "Message": json.dumps(event, separators=(",", ":")),
            "Timestamp": _stamp(datetime.now(UTC)),
            "SignatureVersion": "2",
            "SigningCertURL": self.files.cert_url(region),
            "UnsubscribeURL": f"https://sns.{region}.amazonaws.com/?Action=Unsubscribe"
            f"&SubscriptionArn={self.topic_arn}:local",
        }
        canonical = "".join(f"{k}\n{message[k]}\n" for k in _SIGNED if k in message).encode()
        signature = self.key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
        message["Signature"] = base64.b64encode(signature).decode()
        return json.dumps(message).encode()


class Simulator:
    """Publishes the simulator's events for accepted sends to the webhook, after ``delay``."""

    def __init__(
        self,
        signer: Signer,
        webhook_url: str,
        *,
        delay: float = 0.5,
        deliver_all: bool = False,
        attempts: int = 5,
    ) -> None:
        import httpx

        self.signer = signer
        self.webhook_url = webhook_url
        self.delay = delay
        self.deliver_all = deliver_all
        self.attempts = attempts
        self.http = httpx.AsyncClient(timeout=10.0)
        self.published = 0
        self.failed = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._limit = asyncio.Semaphore(32)

    def wants(self, request_body: bytes) -> bool:
        """Cheap test before parsing: only simulator mail, unless every delivery is published."""
        return self.deliver_all or SIMULATOR_DOMAIN.encode() in request_body.lower()

    def accepted(self, request: dict[str, Any], ses_message_id: str, region: str) -> None:
        events = events_for(request, ses_message_id, region, deliver_all=self.deliver_all)
        if not events:
            return
        task = asyncio.get_running_loop().create_task(self._publish(events, region))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _publish(self, events: list[dict[str, Any]], region: str) -> None:
        await asyncio.sleep(self.delay)
        for event in events:
            body = self.signer.notification(event, region)
            async with self._limit:
                await self._post(body)

    async def _post(self, body: bytes) -> None:
        import httpx

        # as SNS: retried with backoff when the endpoint is down or answers 5xx
        for attempt in range(self.attempts):
            try:
                answer = await self.http.post(
                    self.webhook_url,
                    content=body,
                    headers={
                        "content-type": "text/plain; charset=UTF-8",
                        "x-amz-sns-message-type": "Notification",
                    },
                )
                if answer.status_code < 500:
                    self.published += answer.status_code == 200
                    self.failed += answer.status_code != 200
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(min(0.5 * 2**attempt, 10.0))
        self.failed += 1

    def receive(self, body: dict[str, Any], region: str = "us-east-1") -> dict[str, Any]:
        """``POST /_standin/receive {"to": [...], "subject", "from"}``: mail received as an
        SES receipt rule with an SNS action publishes it (a ``Received`` notification,
        signed), as for the unsubscribe domain ``mailer ses setup --inbound-unsubscribe``
        sets up."""
        event = received_event(
            [str(a) for a in body.get("to") or []],
            str(body.get("subject") or ""),
            str(body.get("from") or "reader@example.test"),
            self.signer.topic_arn,
        )
        task = asyncio.get_running_loop().create_task(self._publish([event], region))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {"message_id": event["mail"]["messageId"]}

    def stats(self) -> dict[str, Any]:
        return {
            "webhook": self.webhook_url,
            "published": self.published,
            "failed": self.failed,
            "pending": len(self._tasks),
            "deliver_all": self.deliver_all,
        }

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.http.aclose()
