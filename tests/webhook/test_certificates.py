"""Signing certificates: fetched from AWS only by the URL rules, with a size cap, cached;
read from MAILER_SNS_CERT_DIR instead when the file is there."""

from __future__ import annotations

import json

import httpx
import pytest

from mailer.webhook.sns import CertStore, Rejected, check_url, verify
from tests.fixtures.sns import CERT_NAME, CERT_URL, TOPIC, Signer, ses_event


class AwsCerts:
    """Amazon SNS's certificate host (AWS cannot run here): what it is asked, what it answers."""

    def __init__(self, body: bytes, status: int = 200) -> None:
        self.body, self.status = body, status
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.asked.append(str(request.url))
        return httpx.Response(self.status, content=self.body)


def _store(aws: AwsCerts, max_bytes: int = 65_536) -> CertStore:
    return CertStore(
        None, httpx.AsyncClient(transport=httpx.MockTransport(aws)), max_bytes=max_bytes
    )


async def test_fetched_once_then_cached(sns_signer: Signer) -> None:
    aws = AwsCerts((sns_signer.cert_dir / CERT_NAME).read_bytes())
    store = _store(aws)
    for _ in range(3):
        message = sns_signer.notification(ses_event("Delivery", "x", ["a@b.test"]))
        await verify(json.dumps(message).encode(), store, [TOPIC])
    assert aws.asked == [CERT_URL]


@pytest.mark.parametrize(
    ("body", "status", "why"),
    [
        (b"x" * 70_000, 200, "too large"),
        (b"not found", 404, "answered 404"),
        (b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n", 200, "not a PEM"),
    ],
)
async def test_bad_certificates_are_refused(body: bytes, status: int, why: str) -> None:
    store = _store(AwsCerts(body, status))
    with pytest.raises(Rejected, match=why):
        await store.key(CERT_URL)


async def test_the_cert_dir_never_stands_in_for_a_foreign_host(sns_signer: Signer) -> None:
    aws = AwsCerts(b"")
    store = CertStore(sns_signer.cert_dir, httpx.AsyncClient(transport=httpx.MockTransport(aws)))
    await store.key(CERT_URL)  # read from the directory, not fetched
    with pytest.raises(Rejected):
        await store.key(f"https://certs.example.com/{CERT_NAME}")
    assert aws.asked == []


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-0f.pem",
        "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-0f.pem",
    ],
)
def test_aws_urls_pass(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-abc.pem",
        "https://evilsns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.co/SimpleNotificationService-abc.pem",
        "https://sns.evil.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-xyz.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem.txt",
        "https://sns.us-east-1.amazonaws.com/a/../SimpleNotificationService-abc.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "ftp://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com:444/SimpleNotificationService-abc.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem#x",
        "not a url",
    ],
)
def test_other_urls_fail(url: str) -> None:
    with pytest.raises(Rejected):
        check_url(url)
