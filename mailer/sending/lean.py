"""SES v2 ``SendEmail`` without botocore's request pipeline: the send path's client.

A send is one request whose shape never changes, so the body is built here
(``lean_body.send_email_body``: byte for byte what botocore serialises), signed with AWS
Signature Version 4 by ``awscrt`` (AWS's own C signer, the one botocore switches to when
it is installed) and posted over aiohttp's pooled keep-alive connections, TLS verified.
What botocore gives that matters is still botocore's, asked once or per call where it
counts:

- credentials: the aiobotocore session's full chain (environment, profiles, SSO,
  container and instance roles, web identity); ``get_frozen_credentials()`` per call
  refreshes them before they expire;
- the endpoint: resolved once per region by botocore itself (``AWS_ENDPOINT_URL_SESV2``,
  ``AWS_ENDPOINT_URL``, the region, FIPS and dual-stack settings, proxies, CA bundle);
- errors: an answer other than 2xx is parsed by botocore's REST-JSON parser into the
  client's modeled ``ClientError``, network failures are mapped as aiobotocore maps them,
  and both go through :func:`~mailer.sending.transport.classify`.

GetAccount and everything else stays on aiobotocore (:class:`SesTransport`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiobotocore.config import AioConfig
from aiohttp import ClientConnectionError, ClientConnectorError, ServerTimeoutError
from awscrt.auth import AwsCredentialsProvider, AwsSigningConfig, aws_sign_request
from awscrt.http import HttpHeaders, HttpRequest
from botocore import UNSIGNED
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    NoCredentialsError,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
)
from botocore.httpsession import ProxyConfiguration, get_cert_path, mask_proxy_url
from botocore.parsers import create_parser
from yarl import URL

from mailer import metrics
from mailer.sending.lean_body import send_email_body
from mailer.sending.transport import OutboundEmail, SesTransport, failed_send

# aiobotocore's own (aiobotocore.httpsession.DEFAULT_KEEPALIVE_TIMEOUT)
KEEPALIVE_SECONDS = 12.0


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where one region's SendEmail goes, as botocore resolved it."""

    region: str
    url: URL
    host: str  # the Host header, signed
    path: str
    signing_region: str
    signing_name: str
    proxy: str | None = None
    proxy_headers: dict[str, str] | None = None


class _Resolved(Exception):  # noqa: N818 - not an error: botocore's request, caught
    def __init__(self, request: Any) -> None:
        super().__init__("resolved")
        self.request = request


async def resolve_endpoint(session: Any, region: str, endpoint_url: str | None) -> Endpoint:
    """The SendEmail URL of ``region`` exactly as botocore builds it (endpoint rules,
    environment and config file, FIPS and dual-stack), read from the request botocore
    prepares and stopped before it is sent; nothing goes out, nothing is signed."""
    config = AioConfig(signature_version=UNSIGNED)
    async with session.create_client(
        "sesv2", region_name=region, endpoint_url=endpoint_url, config=config
    ) as client:

        def stop(request: Any, **_: Any) -> None:
            raise _Resolved(request)

        client.meta.events.register_first("before-send.sesv2.SendEmail", stop)
        try:
            await client.send_email(
                FromEmailAddress="resolve@example.com",
                Destination={"ToAddresses": ["resolve@example.com"]},
                Content={"Simple": {"Subject": {"Data": "-"}, "Body": {"Text": {"Data": "-"}}}},
            )
        except _Resolved as resolved:
            request = resolved.request
        else:  # pragma: no cover - the hook always stops the call
            raise RuntimeError("botocore sent SendEmail while resolving its endpoint")
        signing = request.context.get("signing") or {}
        signing_name = signing.get("signing_name") or client.meta.service_model.signing_name
        signing_region = signing.get("region") or client.meta.region_name
    url = URL(request.url, encoded=True)
    host = url.raw_host or ""
    proxies = ProxyConfiguration()
    proxy = proxies.proxy_url_for(str(url))
    return Endpoint(
        region=region,
        url=url,
        # botocore signs the host without a default port; aiohttp sends it that way too
        host=host if url.is_default_port() else f"{host}:{url.port}",
        path=url.raw_path,
        signing_region=signing_region,
        signing_name=signing_name,
        proxy=proxy,
        proxy_headers=proxies.proxy_headers_for(proxy) if proxy else None,
    )


class CrtSigner:
    """SigV4 headers of a SendEmail through awscrt, from a botocore credentials object
    (refreshable or not): the same signed header set as botocore's (content-type, host,
    x-amz-date, x-amz-security-token when there is a session token)."""

    def __init__(self, credentials: Any) -> None:
        self._credentials = credentials
        self._frozen: Any = None
        self._provider: AwsCredentialsProvider | None = None

    async def _current(self) -> AwsCredentialsProvider:
        if self._credentials is None:
            raise NoCredentialsError()
        # cheap while the credentials are far from expiring; refreshes them when not
        frozen = await self._credentials.get_frozen_credentials()
        if frozen != self._frozen or self._provider is None:
            self._provider = AwsCredentialsProvider.new_static(
                frozen.access_key, frozen.secret_key, frozen.token
            )
            self._frozen = frozen
        return self._provider

    async def headers(self, endpoint: Endpoint, body: bytes) -> list[tuple[str, str]]:
        provider = await self._current()
        request = HttpRequest(
            "POST",
            endpoint.path,
            HttpHeaders([("host", endpoint.host), ("content-type", "application/json")]),
        )
        config = AwsSigningConfig(
            credentials_provider=provider,
            region=endpoint.signing_region,
            service=endpoint.signing_name,
            signed_body_value=hashlib.sha256(body).hexdigest(),
        )
        signed = aws_sign_request(request, config)
        if not signed.done():  # a static provider signs at once; never block the loop
            await asyncio.wrap_future(signed)
        signed.result()
        return list(request.headers)


def network_error(exc: BaseException, url: str, proxy: str | None = None) -> Exception:
    """An aiohttp failure as the botocore exception aiobotocore raises for it
    (``aiobotocore.httpsession.AIOHTTPSession.send``), so that it is classified alike."""
    if isinstance(exc, aiohttp.ClientSSLError):
        return SSLError(endpoint_url=url, error=exc)
    if isinstance(exc, aiohttp.ClientProxyConnectionError | aiohttp.ClientHttpProxyError):
        return ProxyConnectionError(proxy_url=mask_proxy_url(proxy or ""), error=exc)
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.http_exceptions.BadStatusLine,
    ):
        return ConnectionClosedError(error=exc, request=None, endpoint_url=url)
    if isinstance(exc, ServerTimeoutError):
        if str(exc).lower().startswith("connect"):
            return ConnectTimeoutError(endpoint_url=url, error=exc)
        return ReadTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, ClientConnectorError | ClientConnectionError | socket.gaierror):
        return EndpointConnectionError(endpoint_url=url, error=exc)
    if isinstance(exc, asyncio.TimeoutError):
        return ReadTimeoutError(endpoint_url=url, error=exc)
    return HTTPClientError(error=exc)


class LeanSesTransport(SesTransport):
    """:class:`SesTransport` whose ``send`` is the lean SendEmail; GetAccount, ``quota``
    and ``account`` stay on the aiobotocore clients of the parent."""

    def __init__(
        self, endpoint_url: str | None, max_in_flight: int = 256, timeout: float = 10.0
    ) -> None:
        super().__init__(endpoint_url, max_in_flight, timeout)
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self._endpoints: dict[str, Endpoint] = {}
        self._http: aiohttp.ClientSession | None = None
        self._signer: CrtSigner | None = None
        self._parser = create_parser("rest-json")
        self._exceptions: Any = None
        self._output_shape: Any = None
        self._lean_lock = asyncio.Lock()

    async def _ready(self, region: str) -> Endpoint:
        async with self._lean_lock:
            endpoint = self._endpoints.get(region)
            if endpoint is not None:
                return endpoint
            if self._http is None:
                await self._start(region)
            endpoint = await resolve_endpoint(self._session, region, self.endpoint_url)
            self._endpoints[region] = endpoint
            return endpoint

    async def _start(self, region: str) -> None:
        # the modeled exceptions and the error parser's shapes, from a client botocore made
        client = await self.client(region)
        self._exceptions = client.exceptions
        self._output_shape = client.meta.service_model.operation_model("SendEmail").output_shape
        self._signer = CrtSigner(await self._session.get_credentials())
        verify = self._session.get_config_variable("ca_bundle")
        context = ssl.create_default_context(cafile=get_cert_path(verify or True))
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=self.max_in_flight, ssl=context, keepalive_timeout=KEEPALIVE_SECONDS
            ),
            # as aiobotocore's client: each of connect and read bounded, not the whole call
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self.timeout, sock_read=self.timeout
            ),
            headers={
                "Accept-Encoding": "identity",
                "User-Agent": f"mailer aiohttp/{aiohttp.__version__}",
            },
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    def _error(self, status: int, headers: Any, body: bytes) -> Exception:
        """An SES error answer as botocore raises it: parsed by its REST-JSON parser, the
        client's modeled exception for the code."""
        parsed = self._parser.parse(
            {
                "status_code": status,
                "headers": {k.lower(): v for k, v in headers.items()},
                "body": body,
            },
            self._output_shape,
        )
        error = parsed.get("Error", {})
        code = error.get("QueryErrorCode") or error.get("Code")
        return self._exceptions.from_code(code)(parsed, "SendEmail")  # type: ignore[no-any-return]

    async def send(self, region: str, email: OutboundEmail) -> str:
        endpoint = self._endpoints.get(region) or await self._ready(region)
        assert self._http is not None and self._signer is not None
        started = time.perf_counter()
        try:
            body = send_email_body(email)
            headers = await self._signer.headers(endpoint, body)
            try:
                async with self._http.post(
                    endpoint.url,
                    data=body,
                    headers=headers,
                    proxy=endpoint.proxy,
                    proxy_headers=endpoint.proxy_headers,
                ) as response:
                    answer = await response.read()
                    status = response.status
                    if status >= 300:
                        raise self._error(status, response.headers, answer)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise network_error(exc, str(endpoint.url), endpoint.proxy) from exc
            message_id = json.loads(answer)["MessageId"]
        except Exception as exc:  # noqa: BLE001 - every failure is classified here
            raise failed_send(region, started, exc, email) from exc
        metrics.ses_call(region, "SendEmail", started)
        return str(message_id)

    async def open(self, regions: list[str]) -> dict[str, dict[str, float] | None]:
        quotas = await super().open(regions)
        for region in regions:
            await self._ready(region)
        return quotas

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None
        self._endpoints.clear()
        await super().close()
