"""What messages can make the certificate store do: few fetches whatever arrives (a budget,
one fetch per URL at a time, failures remembered), no certificate used outside its
validity, SignatureVersion 1 refused when V2 is required, and no internals in an answer.

AWS cannot be reached here: the store's HTTP client sends every request to a server of
this test on 127.0.0.1, which counts them; a refusal made before any connection leaves
the count alone.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from mailer.config import Settings
from mailer.webhook import sns
from mailer.webhook.sns import CertStore, CertUnavailable, Rejected, verify
from tests.fixtures.sns import CERT_URL, TOPIC, Signer, ses_event
from tests.webhook.conftest import post


class CertHost:
    """An HTTP server on 127.0.0.1 standing in for SNS's certificate host."""

    def __init__(self, status: int = 404, body: bytes = b"no such certificate") -> None:
        self.status, self.body = status, body
        self.asked: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._answer, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        self.asked.append(head.split(b" ")[1].decode())
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
            % (self.status, len(self.body), self.body)
        )
        await writer.drain()
        writer.close()


class ToLocal(httpx.AsyncBaseTransport):
    """Every request sent to 127.0.0.1:``port`` instead of its host, its path kept."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host="127.0.0.1", port=self.port)
        return await self.inner.handle_async_request(request)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def host() -> AsyncIterator[CertHost]:
    server = CertHost()
    await server.start()
    yield server
    await server.stop()


def _store(port: int, clock: Clock, per_minute: int = 5) -> CertStore:
    http = httpx.AsyncClient(transport=ToLocal(port))
    return CertStore(None, http, fetches_per_minute=per_minute, clock=clock)


def _url(i: int) -> str:
    return f"https://sns.us-east-1.amazonaws.com/SimpleNotificationService-{i:032x}.pem"


async def test_a_flood_of_unknown_certificates_costs_a_few_fetches(host: CertHost) -> None:
    clock = Clock()
    store = _store(host.port, clock, per_minute=5)
    results = await asyncio.gather(
        *(store.key(_url(i)) for i in range(200)), return_exceptions=True
    )
    assert len(host.asked) == 5  # the budget; the other 195 refused before connecting
    assert sum(isinstance(r, Rejected) for r in results) == 5  # answered 404
    assert sum(isinstance(r, CertUnavailable) for r in results) == 195  # 503: come back later
    # the five that failed are remembered: asked again, refused without a fetch
    for i in range(5):
        with pytest.raises(Rejected, match="answered 404"):
            await store.key(_url(i))
    assert len(host.asked) == 5
    # a minute later the budget is back; one URL named by 50 messages at once: one fetch
    clock.now += 60
    results = await asyncio.gather(
        *(store.key(_url(999)) for _ in range(50)), return_exceptions=True
    )
    assert all(isinstance(r, Rejected) for r in results)
    assert len(host.asked) == 6


async def test_a_failed_fetch_is_remembered_for_a_while(host: CertHost) -> None:
    clock = Clock()
    store = _store(host.port, clock, per_minute=100)
    for _ in range(20):
        with pytest.raises(Rejected):
            await store.key(CERT_URL)
    assert len(host.asked) == 1
    clock.now += sns.REJECTED_SECONDS + 1
    with pytest.raises(Rejected):
        await store.key(CERT_URL)
    assert len(host.asked) == 2


async def test_a_fetch_that_fails_is_a_503_that_names_no_internals(
    app, client, sns_signer: Signer
) -> None:  # type: ignore[no-untyped-def]
    host = CertHost()
    await host.start()
    port = host.port
    await host.stop()  # nothing listens there now: the connection is refused
    app.state.sns_certs = CertStore(None, httpx.AsyncClient(transport=ToLocal(port)))
    message = sns_signer.notification(ses_event("Delivery", "x", ["a@b.test"]))
    r = await post(client, message)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["message"] == "the signing certificate could not be fetched"
    assert "Error" not in r.text and "(" not in r.text


async def test_a_cached_certificate_is_used_only_within_its_validity(sns_signer: Signer) -> None:
    store = CertStore(sns_signer.cert_dir, httpx.AsyncClient())
    now = datetime.now(UTC)
    await verify(_notification(sns_signer, now), store, [TOPIC])  # read and cached
    for at in (now + timedelta(days=31), now - timedelta(days=2)):  # valid -1 d .. +30 d
        with pytest.raises(Rejected, match="not valid now"):
            await verify(_notification(sns_signer, at), store, [TOPIC], now=at)
    await verify(_notification(sns_signer, now), store, [TOPIC])  # still fine today


def _notification(signer: Signer, at: datetime) -> bytes:
    message = signer.notification(ses_event("Delivery", "x", ["a@b.test"]), timestamp=at)
    return json.dumps(message).encode()


@pytest.fixture
def sns_settings(settings: Settings, sns_signer: Signer) -> Settings:
    return settings.model_copy(
        update={
            "sns_cert_dir": sns_signer.cert_dir,
            "sns_topic_arns": [TOPIC],
            "sns_require_v2": True,
        }
    )


async def test_signature_version_1_is_refused_when_v2_is_required(
    client, sns_signer: Signer
) -> None:  # type: ignore[no-untyped-def]
    v1 = sns_signer.notification(ses_event("Delivery", "x1", ["a@b.test"]), version="1")
    v2 = sns_signer.notification(ses_event("Delivery", "x2", ["a@b.test"]), version="2")
    r = await post(client, v1)
    assert r.status_code == 403 and "SignatureVersion 1 is refused" in r.json()["error"]["message"]
    assert (await post(client, v2)).status_code == 200
    # without the setting, version 1 is genuine
    store = CertStore(sns_signer.cert_dir, httpx.AsyncClient())
    assert (await verify(json.dumps(v1).encode(), store, [TOPIC])).type == "Notification"
