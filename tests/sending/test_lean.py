"""The lean SendEmail client (``mailer.sending.lean``) against aiobotocore's, message for
message: the same request on the wire, validly signed; accepted by moto and by the
stand-in alike; every SES answer and network failure classified alike; credentials that
rotate while it runs keep signing.
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiobotocore.session import get_session
from moto.core import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.ses.models import ses_backends

from mailer.local import sigv4
from mailer.sending.lean import LeanSesTransport, resolve_endpoint
from mailer.sending.transport import (
    ErrorKind,
    OutboundEmail,
    SendError,
    SesTransport,
    send_email_params,
)
from tests.fixtures.ses_answers import (
    HANG,
    RESET,
    Answer,
    SesAnswers,
    ses_answers,
    ses_answers_server,
)
from tests.fixtures.standin import StandinProcess, clean_standin, standin

__all__ = ["clean_standin", "ses_answers", "ses_answers_server", "standin"]  # fixtures below

EMAIL = OutboundEmail(
    to="Åsa Öberg <asa@example.com>",
    from_address="Nyheter från Butik <news@shop.example>",
    subject="Veckans nyheter – 20 % rabatt",
    html="<p>Hej Åsa, här är veckans nyheter 🎉</p>",
    text="Hej Åsa, här är veckans nyheter",
    reply_to="Svar <reply@shop.example>",
    headers={
        "List-Unsubscribe": "<https://mail.example/u/abc>, <mailto:u@shop.example?subject=abc>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    },
    tags={"mail_class": "marketing", "campaign_id": "7", "message_id": "42"},
    configuration_set="marketing",
)
CLIENTS = {"botocore": SesTransport, "lean": LeanSesTransport}


async def send_with(kind: str, url: str, ses_timeout: float = 5) -> str:
    transport = CLIENTS[kind](url, max_in_flight=4, timeout=ses_timeout)
    try:
        return await transport.send("eu-west-1", EMAIL)
    finally:
        await transport.close()


@pytest.fixture(scope="module")
async def clients(ses_answers_server: SesAnswers) -> AsyncIterator[dict[str, SesTransport]]:
    """Both clients on the module's server, opened once (a client's creation is the
    costly part of a test)."""
    opened = {
        kind: cls(ses_answers_server.url, max_in_flight=4, timeout=5)
        for kind, cls in CLIENTS.items()
    }
    for transport in opened.values():
        await transport.open(["eu-west-1"])
    yield opened
    for transport in opened.values():
        await transport.close()


async def failure_of(kind: str, url: str, ses_timeout: float = 5) -> SendError:
    with pytest.raises(SendError) as raised:
        await send_with(kind, url, ses_timeout)
    return raised.value


# -- the request ---------------------------------------------------------------------------


async def test_both_clients_send_the_same_body_and_sign_the_same_headers(
    ses_answers: SesAnswers,
) -> None:
    for kind in CLIENTS:
        assert await send_with(kind, ses_answers.url)
    botocore, lean = ses_answers.requests
    # byte for byte, what botocore's serialiser makes of the same parameters
    assert lean.body == botocore.body
    assert json.loads(lean.body) == send_email_params(EMAIL)
    assert (
        (lean.method, lean.path)
        == (botocore.method, botocore.path)
        == (
            "POST",
            "/v2/email/outbound-emails",
        )
    )
    assert lean.signed_headers == botocore.signed_headers == ["content-type", "host", "x-amz-date"]
    for name in ("content-type", "host"):
        assert lean.header(name) == botocore.header(name)
    scope = [
        r.header("Authorization").split("Credential=")[1].split(",")[0] for r in (lean, botocore)
    ]  # type: ignore[union-attr]
    assert scope[0] == scope[1] and scope[0].endswith("/eu-west-1/ses/aws4_request")
    # each signature recomputed from what arrived, as SES does, and found valid
    assert lean.failure is None and botocore.failure is None


async def test_a_signature_is_checked_not_just_read(ses_answers: SesAnswers) -> None:
    """The check the test above relies on refuses a body changed after signing and an
    unknown secret: it recomputes, it does not just parse."""
    await send_with("lean", ses_answers.url)
    (request,) = ses_answers.requests

    def check(body: bytes, secret: str) -> sigv4.Failure | None:
        return sigv4.verify(
            request.method,
            request.path,
            request.query,
            request.headers,
            body,
            {"testing": secret}.get,
        )

    assert check(request.body, "testing") is None
    assert check(request.body.replace(b"Hej", b"Hei"), "testing") == (
        403,
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided.",
    )
    assert check(request.body, "other")[1] == "InvalidSignatureException"  # type: ignore[index]


async def test_a_session_token_is_sent_and_signed_by_both(
    ses_answers: SesAnswers, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "token-of-the-session")
    for kind in CLIENTS:
        await send_with(kind, ses_answers.url)
    for request in ses_answers.requests:
        assert request.failure is None
        assert request.header("X-Amz-Security-Token") == "token-of-the-session"
        assert request.signed_headers == [
            "content-type",
            "host",
            "x-amz-date",
            "x-amz-security-token",
        ]


async def test_moto_accepts_both_and_keeps_the_same_message() -> None:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        setup = SesTransport(url)
        client = await setup.client("eu-west-1")
        await client.create_email_identity(EmailIdentity="news@shop.example")
        await setup.close()
        ids = [await send_with(kind, url) for kind in CLIENTS]
        backend = ses_backends[DEFAULT_ACCOUNT_ID]["eu-west-1"]
        sent = {m.id: m for m in backend.sent_messages}
        botocore, lean = (sent[i] for i in ids)
        for field in ("source", "destinations", "subject", "body"):
            assert getattr(lean, field) == getattr(botocore, field)
        assert lean.subject == EMAIL.subject
    finally:
        server.stop()


async def test_the_stand_in_records_identical_messages(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    ids = [await send_with(kind, url) for kind in CLIENTS]
    recorded = control.messages()
    assert [m["MessageId"] for m in recorded] == ids
    for message in recorded:
        for key in ("seq", "t", "time", "MessageId"):
            del message[key]
    assert recorded[0] == recorded[1] == {**send_email_params(EMAIL), "region": "eu-west-1"}


# -- the answers ---------------------------------------------------------------------------

# as SES v2 answers: the code in x-amzn-ErrorType, {"message": ...} (or {"Message": ...}
# from the authentication layer); gateways in front of it answer 5xx without either
ANSWERS = [
    (Answer(429, "TooManyRequestsException", "Maximum sending rate exceeded."), ErrorKind.THROTTLED),  # noqa: E501
    (Answer(400, "ThrottlingException", "Rate exceeded"), ErrorKind.THROTTLED),
    (Answer(400, "LimitExceededException", "Maximum sending rate exceeded."), ErrorKind.THROTTLED),
    (Answer(400, "LimitExceededException", "Daily message quota exceeded."), ErrorKind.QUOTA),
    (Answer(400, "MessageRejected", "Email address is not verified. The following identities failed the check in region EU-WEST-1: asa@example.com"), ErrorKind.PERMANENT),  # noqa: E501
    (Answer(400, "MessageRejected", "Email address is not verified. The following identities failed the check in region EU-WEST-1: news@shop.example"), ErrorKind.ACCOUNT),  # noqa: E501
    (Answer(400, "MessageRejected", "Illegal address"), ErrorKind.PERMANENT),
    (Answer(400, "BadRequestException", "Missing final '@domain'"), ErrorKind.PERMANENT),
    (Answer(400, "AccountSuspendedException", "Your account has been suspended."), ErrorKind.ACCOUNT),  # noqa: E501
    (Answer(400, "SendingPausedException", "Sending is paused for this account."), ErrorKind.ACCOUNT),  # noqa: E501
    (Answer(400, "MailFromDomainNotVerifiedException", "MAIL FROM domain not verified"), ErrorKind.ACCOUNT),  # noqa: E501
    (Answer(404, "NotFoundException", "Configuration set <marketing> does not exist."), ErrorKind.ACCOUNT),  # noqa: E501
    (Answer(400, "BrandNewSesException", "new"), ErrorKind.TRANSIENT),
    (Answer(403, "UnrecognizedClientException", "The security token included in the request is invalid."), ErrorKind.ACCOUNT),  # noqa: E501
    (Answer(403, "InvalidSignatureException", "Signature expired: 20260101T000000Z is now earlier than 20260101T000500Z"), ErrorKind.ACCOUNT),  # noqa: E501
    (Answer(403, "AccessDeniedException", body=b'{"Message":"User: arn:aws:iam::1:user/x is not authorized to perform: ses:SendEmail"}'), ErrorKind.ACCOUNT),  # noqa: E501
    (Answer(403, body=b"", content_type="text/plain"), ErrorKind.ACCOUNT),
    (Answer(500, "InternalFailure", "An internal failure occurred."), ErrorKind.TRANSIENT),
    (Answer(503, "ServiceUnavailable", "Service unavailable."), ErrorKind.TRANSIENT),
    (Answer(502, body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"), ErrorKind.TRANSIENT),  # noqa: E501
    (Answer(504, body=b""), ErrorKind.TRANSIENT),
]  # fmt: skip  # noqa: E501


@pytest.mark.parametrize(("answer", "kind"), ANSWERS)
async def test_every_answer_is_classified_alike(
    ses_answers: SesAnswers, clients: dict[str, SesTransport], answer: Answer, kind: ErrorKind
) -> None:
    errors = []
    for transport in clients.values():
        ses_answers.answers.append(answer)
        with pytest.raises(SendError) as raised:
            await transport.send("eu-west-1", EMAIL)
        errors.append(raised.value)
    botocore, lean = errors
    assert (lean.kind, lean.reason) == (botocore.kind, botocore.reason)
    assert lean.kind is kind, lean.reason


async def test_a_reset_connection_is_classified_alike(ses_answers: SesAnswers) -> None:
    errors = []
    for client in CLIENTS:
        ses_answers.answers.append(RESET)
        errors.append(await failure_of(client, ses_answers.url))
    assert [e.kind for e in errors] == [ErrorKind.TRANSIENT] * 2
    assert [e.reason.split(":")[0] for e in errors] == ["connection"] * 2, errors


async def test_a_timeout_is_classified_alike(ses_answers: SesAnswers) -> None:
    errors = []
    for client in CLIENTS:
        ses_answers.answers.append(HANG)
        errors.append(await failure_of(client, ses_answers.url, ses_timeout=0.5))
    botocore, lean = errors
    assert (lean.kind, lean.reason) == (botocore.kind, botocore.reason)
    assert lean.kind is ErrorKind.TRANSIENT and lean.reason.startswith("timeout: Read timeout")


async def test_nothing_listening_is_classified_alike(ses_answers: SesAnswers) -> None:
    url = ses_answers.url.rsplit(":", 1)[0] + ":9"  # discard: nobody listens there
    errors = [await failure_of(client, url) for client in CLIENTS]
    assert [(e.kind, e.reason.split(":")[0]) for e in errors] == [
        (ErrorKind.TRANSIENT, "connection")
    ] * 2


# -- credentials and endpoints -------------------------------------------------------------

ROTATING = """\
import datetime, json, pathlib, sys
counter = pathlib.Path(sys.argv[1])
n = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(n))
expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=605)
print(json.dumps({"Version": 1, "AccessKeyId": f"ROTATING{n}", "SecretAccessKey": f"secret-{n}",
                  "SessionToken": f"token-{n}", "Expiration": expires.isoformat()}))
"""


async def test_credentials_that_rotate_mid_run_keep_signing(
    ses_answers: SesAnswers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporary credentials from a profile's ``credential_process`` that always expire in
    ten minutes: botocore refreshes them before every call (its advisory window is 15
    minutes), each time with a new key. Every call is signed with a key that is current."""
    script = tmp_path / "rotate.py"
    script.write_text(ROTATING)
    config = tmp_path / "config"
    config.write_text(
        f"[profile rotating]\ncredential_process = {sys.executable} {script} {tmp_path / 'n'}\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "rotating")
    ses_answers.secret_of = lambda key: f"secret-{key.removeprefix('ROTATING')}"

    transport = LeanSesTransport(ses_answers.url, max_in_flight=4, timeout=5)
    try:
        for _ in range(3):
            await transport.send("eu-west-1", EMAIL)
    finally:
        await transport.close()
    keys = [r.access_key for r in ses_answers.requests]
    assert all(r.failure is None for r in ses_answers.requests)
    assert len(set(keys)) == 3, keys  # a new key for each call, each accepted
    for request in ses_answers.requests:
        number = request.access_key.removeprefix("ROTATING")
        assert request.header("X-Amz-Security-Token") == f"token-{number}"


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({}, "https://email.eu-west-1.amazonaws.com/v2/email/outbound-emails"),
        (
            {"AWS_USE_FIPS_ENDPOINT": "true"},
            "https://email-fips.eu-west-1.amazonaws.com/v2/email/outbound-emails",
        ),
        (
            {"AWS_USE_DUALSTACK_ENDPOINT": "true"},
            "https://email.eu-west-1.api.aws/v2/email/outbound-emails",
        ),
        (
            {"AWS_ENDPOINT_URL": "https://ses.internal.example:8443/base"},
            "https://ses.internal.example:8443/base/v2/email/outbound-emails",
        ),
        (
            {
                "AWS_ENDPOINT_URL": "https://other.example",
                "AWS_ENDPOINT_URL_SESV2": "https://ses.internal.example",
            },
            "https://ses.internal.example/v2/email/outbound-emails",
        ),
    ],
)
async def test_the_endpoint_is_botocores(
    env: dict[str, str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SESV2"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    endpoint = await resolve_endpoint(get_session(), "eu-west-1", None)
    assert str(endpoint.url) == url
    assert (endpoint.signing_region, endpoint.signing_name) == ("eu-west-1", "ses")
    assert endpoint.host == url.split("/")[2]
