"""The AWS side of ``mailer ses``: where to call (endpoints, credentials), one sesv2 and one
sns client per region through aiobotocore, and how an AWS error reads.

The webhook's subscription confirmations use :func:`sns_transport`: with an SNS endpoint
configured (``AWS_ENDPOINT_URL_SNS``, the local emulator), the verified ``SubscribeURL``
on an SNS host is fetched from that endpoint instead of from AWS.
"""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import httpx
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session
from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError

from mailer.config import Settings

_SNS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-\d\.amazonaws\.com(?:\.cn)?")


@dataclass(frozen=True)
class Target:
    """Where the ``mailer ses`` calls go: endpoints (None: AWS) and credentials (None:
    the standard AWS chain)."""

    ses_endpoint: str | None = None
    sns_endpoint: str | None = None
    access_key: str | None = None
    secret_key: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Target:
        return cls(settings.ses_endpoint_url, settings.sns_endpoint_url)


class AwsError(Exception):
    """An AWS call that failed: its code (``NotFoundException``…) and message."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message


NOT_FOUND = ("NotFoundException", "NotFound", "ResourceNotFoundException")


@lru_cache(maxsize=1)
def shared_session() -> AioSession:
    """One botocore session per process for long-lived users (the API's sender check): its
    service models and credentials are loaded once, not per client (~50 ms each time)."""
    return get_session()


class Clients:
    """sesv2, ses (receipt rules) and sns clients per region, opened on first use, closed
    on exit.

    Every call goes through :meth:`call` and is recorded in :attr:`calls` as
    ``service:Operation`` (what ``mailer ses`` reports it did)."""

    def __init__(
        self,
        target: Target,
        *,
        attempts: int = 3,
        connect_timeout: float = 10,
        read_timeout: float = 20,
        record: bool = True,
        session: AioSession | None = None,
    ) -> None:
        self.target = target
        self._session = session or get_session()
        self._stack = AsyncExitStack()
        self._clients: dict[tuple[str, str], Any] = {}
        # what ``mailer ses`` reports it did; a long-lived user (the API's sender check)
        # records nothing
        self.record = record
        self.calls: list[str] = []
        self._config = AioConfig(
            retries={"total_max_attempts": attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )

    async def __aenter__(self) -> Clients:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _client(self, service: str, region: str) -> Any:
        key = (service, region)
        if key not in self._clients:
            # SES v1 (receipt rules) lives where SES v2 does
            endpoint = self.target.sns_endpoint if service == "sns" else self.target.ses_endpoint
            credentials: dict[str, str] = {}
            if self.target.access_key and self.target.secret_key:
                credentials = {
                    "aws_access_key_id": self.target.access_key,
                    "aws_secret_access_key": self.target.secret_key,
                }
            self._clients[key] = await self._stack.enter_async_context(
                self._session.create_client(
                    service,  # type: ignore[call-overload]
                    region_name=region,
                    endpoint_url=endpoint,
                    config=self._config,
                    **credentials,
                )
            )
        return self._clients[key]

    async def call(self, service: str, region: str, operation: str, **params: Any) -> Any:
        """``operation`` (``GetEmailIdentity``) of ``service`` in ``region``; AwsError on
        any failure."""
        if self.record:
            self.calls.append(f"{region} {service}:{operation}")
        try:
            client = await self._client(service, region)
            return await getattr(client, xform_name(operation))(**params)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise AwsError(
                operation, str(error.get("Code") or "Unknown"), str(error.get("Message") or "")
            ) from exc
        except BotoCoreError as exc:
            raise AwsError(operation, type(exc).__name__, str(exc)) from exc

    async def find(self, service: str, region: str, operation: str, **params: Any) -> Any:
        """As :meth:`call`, None when the resource does not exist."""
        try:
            return await self.call(service, region, operation, **params)
        except AwsError as exc:
            if exc.code in NOT_FOUND:
                return None
            raise

    async def pages(
        self, service: str, region: str, operation: str, key: str, **params: Any
    ) -> list[Any]:
        """Every item under ``key`` of a paginated list operation (NextToken)."""
        items: list[Any] = []
        token: str | None = None
        while True:
            extra = {"NextToken": token} if token else {}
            answer = await self.call(service, region, operation, **params, **extra)
            items.extend(answer.get(key) or [])
            token = answer.get("NextToken")
            if not token:
                return items


class _SnsEndpoint(httpx.AsyncBaseTransport):
    """Sends requests for an SNS host to the configured endpoint, path and query kept."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = httpx.URL(endpoint)
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if _SNS_HOST.fullmatch(request.url.host):
            request.url = request.url.copy_with(
                scheme=self.endpoint.scheme, host=self.endpoint.host, port=self.endpoint.port
            )
            request.headers["host"] = request.url.netloc.decode()
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def sns_transport(settings: Settings) -> httpx.AsyncBaseTransport | None:
    """The webhook's HTTP transport: SNS hosts to ``AWS_ENDPOINT_URL_SNS`` when it is set."""
    return _SnsEndpoint(settings.sns_endpoint_url) if settings.sns_endpoint_url else None
