"""Providers behind one small Protocol; errors classified where they are raised.

``SesTransport`` speaks SES v2 ``SendEmail`` through aiobotocore, one client per region,
created once per worker. The project's stand-in (``mailer.local.standin``) is an HTTP
SES endpoint, so the same transport talks to SES, moto and the stand-in.
"""

from __future__ import annotations

import asyncio
import re
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    HTTPClientError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from mailer import metrics
from mailer.contact.addresses import encode_mailbox


class ErrorKind(StrEnum):
    THROTTLED = "throttled"  # retry later, unlimited; slow the region down
    QUOTA = "quota"  # daily quota exhausted: park the region
    TRANSIENT = "transient"  # 5xx, timeouts, connections, unknown codes: bounded retries
    PERMANENT = "permanent"  # the message's own problem: it fails with the reason
    # the account or its configuration (credentials, clock, permissions, sender identity,
    # configuration set, sending paused): pause the mail class, fail nothing
    ACCOUNT = "account"


class SendError(Exception):
    def __init__(self, kind: ErrorKind, reason: str) -> None:
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass(slots=True)
class OutboundEmail:
    to: str
    from_address: str
    subject: str
    html: str
    text: str
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    configuration_set: str | None = None


class Transport(Protocol):
    async def send(self, region: str, email: OutboundEmail) -> str:
        """Send one email through ``region``; the provider's message id, or SendError."""
        ...

    async def quota(self, region: str) -> dict[str, float] | None:
        """``{max_send_rate, max_24h_send, sent_last_24h}``, or None when not available."""
        ...

    async def configuration_set_exists(self, region: str, name: str) -> bool | None:
        """False when SES says the configuration set does not exist, None when unknown."""
        ...

    async def open(self, regions: list[str]) -> dict[str, dict[str, float] | None]:
        """Ready every region before the first send (clients, connections, caches); each
        region's :meth:`quota` as read on the way."""
        ...


_THROTTLED = {"TooManyRequestsException", "Throttling", "ThrottlingException"}
_TRANSIENT = {
    "InternalFailure",
    "InternalError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
}
# A problem of the account or its configuration, not of the message: every other message
# would meet it too, so failing them one by one would burn the audience.
_ACCOUNT = {
    # credentials refused or expired
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
    "InvalidAccessKeyId",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "AuthFailure",
    # signature or clock skew
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "RequestExpired",
    "RequestTimeTooSkewed",
    # permissions
    "AccessDenied",
    "AccessDeniedException",
    "OptInRequired",
    # sender identity and configuration
    "MailFromDomainNotVerifiedException",
    "MailFromDomainNotVerified",
    "ConfigurationSetDoesNotExist",
    "ConfigurationSetDoesNotExistException",
    # sending paused or stopped for the account or the configuration set
    "SendingPausedException",
    "AccountSendingPausedException",
    "ConfigurationSetSendingPausedException",
    "AccountSuspendedException",
}
# The message's own problem (its recipient or content): that message fails.
_PERMANENT = {
    "MessageRejected",
    "BadRequestException",
    "InvalidParameterValue",
    "InvalidParameterValueException",
    "ValidationException",
}
_NOT_VERIFIED = re.compile(r"not verified", re.IGNORECASE)
_ADDRESS = re.compile(r"[^\s,;:<>\"']+@[^\s,;:<>\"']+")


def _unverified_sender(message: str, email: OutboundEmail | None) -> bool:
    """Whether an SES "Email address is not verified" names the sender (an account
    problem) rather than only the recipient (the SES sandbox: that message's problem).

    SES answers "Email address is not verified. The following identities failed the check
    in region US-EAST-1: a@x, b@y"; moto answers "Email address not verified a@x" (the
    sender). Without a listed identity, or without the email to compare, it is the sender.
    """
    listed = {a.strip(".").lower() for a in _ADDRESS.findall(message)}
    if not listed or email is None:
        return True
    sender = email.from_address.rpartition("<")[2].rstrip(">").strip().lower()
    words = {w.strip(",.;") for w in message.lower().split()}
    return sender in listed or sender.rpartition("@")[2] in words


def classify(exc: BaseException, email: OutboundEmail | None = None) -> SendError:
    """The kind of a failed SES call (for ``email``, when known), decided once, here.

    A code this does not know is never permanent: it is retried as transient (bounded),
    except a 401/403, which is an account problem whatever its code.
    """
    if isinstance(exc, SendError):
        return exc
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or code
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        reason = f"{code or status}: {message}"
        if code in _THROTTLED or status == 429:
            return SendError(ErrorKind.THROTTLED, reason)
        if code == "LimitExceededException":
            kind = ErrorKind.THROTTLED if "rate" in message.lower() else ErrorKind.QUOTA
            return SendError(kind, reason)
        if code in _ACCOUNT or status in (401, 403):
            return SendError(ErrorKind.ACCOUNT, reason)
        if code == "NotFoundException":
            # SendEmail names a configuration set, a template or a contact list: all of
            # them configuration, none of them the message's
            return SendError(ErrorKind.ACCOUNT, reason)
        if code == "MessageRejected" and _NOT_VERIFIED.search(message):
            if _unverified_sender(message, email):
                return SendError(ErrorKind.ACCOUNT, reason)
            return SendError(ErrorKind.PERMANENT, reason)
        if code in _PERMANENT:
            return SendError(ErrorKind.PERMANENT, reason)
        if status >= 500 or code in _TRANSIENT:
            return SendError(ErrorKind.TRANSIENT, reason)
        return SendError(ErrorKind.TRANSIENT, f"unknown SES error {reason}")
    if isinstance(exc, UnicodeError | ParamValidationError):
        # the message cannot be encoded or is not a valid request: sending it again
        # changes nothing (a non-ASCII address stuck in ``queued`` as transient, issue 21)
        return SendError(ErrorKind.PERMANENT, f"invalid message: {type(exc).__name__}: {exc}")
    if isinstance(
        exc, ReadTimeoutError | ConnectTimeoutError | asyncio.TimeoutError | TimeoutError
    ):
        return SendError(ErrorKind.TRANSIENT, f"timeout: {exc}")
    if isinstance(exc, BotoConnectionError | HTTPClientError | OSError):
        return SendError(ErrorKind.TRANSIENT, f"connection: {exc}")
    if isinstance(exc, BotoCoreError):
        return SendError(ErrorKind.TRANSIENT, f"{type(exc).__name__}: {exc}")
    return SendError(ErrorKind.TRANSIENT, f"{type(exc).__name__}: {exc}")


def error_code(exc: BaseException, error: SendError) -> str:
    """The SES error code of a failed call, or the kind of failure when there is none."""
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or "unknown"
    return error.reason.split(":", 1)[0] if error.reason else type(exc).__name__


def send_email_params(email: OutboundEmail) -> dict[str, Any]:
    """SES v2 SendEmail arguments for one message (Simple content)."""
    simple: dict[str, Any] = {
        "Subject": {"Data": email.subject, "Charset": "UTF-8"},
        "Body": {
            "Html": {"Data": email.html, "Charset": "UTF-8"},
            "Text": {"Data": email.text, "Charset": "UTF-8"},
        },
    }
    if email.headers:
        simple["Headers"] = [{"Name": k, "Value": v} for k, v in email.headers.items()]
    params: dict[str, Any] = {
        "FromEmailAddress": encode_mailbox(email.from_address),
        "Destination": {"ToAddresses": [email.to]},
        "Content": {"Simple": simple},
    }
    if email.reply_to:
        params["ReplyToAddresses"] = [encode_mailbox(email.reply_to)]
    if email.tags:
        params["EmailTags"] = [{"Name": k, "Value": v} for k, v in email.tags.items()]
    if email.configuration_set:
        params["ConfigurationSetName"] = email.configuration_set
    return params


def client_config(max_in_flight: int, timeout: float) -> AioConfig:
    # botocore's own retries are off: the engine retries by kind, with its own backoff
    return AioConfig(
        max_pool_connections=max_in_flight,
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=timeout,
        read_timeout=timeout,
        tcp_keepalive=True,
    )


def failed_send(region: str, started: float, exc: Exception, email: OutboundEmail) -> SendError:
    """A SendEmail call that failed, classified and counted (both SES clients)."""
    error = classify(exc, email)
    metrics.ses_call(
        region, "SendEmail", started, error_code(exc, error), error.kind is ErrorKind.THROTTLED
    )
    return error


class SesTransport:
    """SES v2 through aiobotocore: one client per region, opened once, closed at shutdown."""

    def __init__(
        self, endpoint_url: str | None, max_in_flight: int = 256, timeout: float = 10.0
    ) -> None:
        self.endpoint_url = endpoint_url
        self.config = client_config(max_in_flight, timeout)
        self._session = get_session()
        self._stack = AsyncExitStack()
        self._clients: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def client(self, region: str) -> Any:
        client = self._clients.get(region)
        if client is None:
            async with self._lock:
                client = self._clients.get(region)
                if client is None:
                    client = await self._stack.enter_async_context(
                        self._session.create_client(
                            "sesv2",
                            region_name=region,
                            endpoint_url=self.endpoint_url,
                            config=self.config,
                        )
                    )
                    self._clients[region] = client
        return client

    async def send(self, region: str, email: OutboundEmail) -> str:
        client = await self.client(region)
        started = time.perf_counter()
        try:
            answer = await client.send_email(**send_email_params(email))
        except Exception as exc:  # noqa: BLE001 - every failure is classified here
            raise failed_send(region, started, exc, email) from exc
        metrics.ses_call(region, "SendEmail", started)
        return str(answer["MessageId"])

    async def quota(self, region: str) -> dict[str, float] | None:
        client = await self.client(region)
        try:
            account = await client.get_account()
        except Exception:  # noqa: BLE001 - moto answers 404; the caller uses a default
            return None
        q = account.get("SendQuota", {})
        return {
            "max_send_rate": float(q.get("MaxSendRate", 0)),
            "max_24h_send": float(q.get("Max24HourSend", 0)),
            "sent_last_24h": float(q.get("SentLast24Hours", 0)),
        }

    async def account(self, region: str) -> dict[str, Any] | None:
        """SES v2 GetAccount of ``region`` (quota, sending enabled, enforcement status,
        production access); None when the endpoint does not answer it (moto: 404)."""
        client = await self.client(region)
        started = time.perf_counter()
        try:
            answer = await client.get_account()
        except Exception as exc:  # noqa: BLE001 - the caller keeps its default
            metrics.ses_call(region, "GetAccount", started, classify(exc).reason.split(":")[0])
            return None
        metrics.ses_call(region, "GetAccount", started)
        q = answer.get("SendQuota", {})
        return {
            "max_send_rate": float(q.get("MaxSendRate", 0)),
            "max_24h_send": float(q.get("Max24HourSend", 0)),
            "sent_last_24h": float(q.get("SentLast24Hours", 0)),
            "sending_enabled": answer.get("SendingEnabled"),
            "enforcement_status": answer.get("EnforcementStatus"),
            "production_access": answer.get("ProductionAccessEnabled"),
        }

    async def configuration_set_exists(self, region: str, name: str) -> bool | None:
        """SES v2 GetConfigurationSet: False when SES says it does not exist, None when
        the answer tells nothing (an error of another kind, an endpoint without it)."""
        client = await self.client(region)
        started = time.perf_counter()
        try:
            await client.get_configuration_set(ConfigurationSetName=name)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            metrics.ses_call(region, "GetConfigurationSet", started, code or "unknown")
            return False if code == "NotFoundException" else None
        except Exception as exc:  # noqa: BLE001 - unknown: the first send will tell
            metrics.ses_call(
                region, "GetConfigurationSet", started, classify(exc).reason.split(":")[0]
            )
            return None
        metrics.ses_call(region, "GetConfigurationSet", started)
        return True

    async def open(self, regions: list[str]) -> dict[str, dict[str, float] | None]:
        """Create each region's client and make one call through it (GetAccount) at start.

        Left to the first send, a client's creation (the service model, endpoint rules,
        the first connection) holds up the first senders of a worker for tens of
        milliseconds, and they then call SES all at once: a burst over the region's rate
        just when the rate limiter had spaced them. The answers are returned: the worker
        takes regions' rates from them.
        """
        return {region: await self.quota(region) for region in regions}

    async def close(self) -> None:
        await self._stack.aclose()
        self._clients.clear()
