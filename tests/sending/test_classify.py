"""SES answers sorted into what the send path does with them.

Most cases build the ``ClientError`` botocore raises for an SES answer; the last ones
get the answers from the stand-in through the real transport (aiobotocore), so the
parsing of status, code and message is botocore's own.
"""

from __future__ import annotations

import asyncio

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError

from mailer.local.standin_client import fault
from mailer.sending.transport import (
    ErrorKind,
    OutboundEmail,
    SendError,
    SesTransport,
    classify,
)
from tests.fixtures.standin import StandinProcess, clean_standin, standin

__all__ = ["clean_standin", "standin"]  # fixtures used below

EMAIL = OutboundEmail(
    to="ada@example.com",
    from_address="News <news@shop.example>",
    subject="Hi",
    html="<p>Hi</p>",
    text="Hi",
    configuration_set="marketing",
)


def ses_error(code: str, status: int, message: str = "something") -> ClientError:
    return ClientError(
        {
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "SendEmail",
    )


ACCOUNT = [
    # credentials refused or expired
    ("UnrecognizedClientException", 403, "The security token included in the request is invalid."),
    ("InvalidClientTokenId", 403, "The security token included in the request is invalid."),
    ("ExpiredToken", 403, "The security token included in the request is expired"),
    ("ExpiredTokenException", 403, "The security token included in the request is expired"),
    ("InvalidAccessKeyId", 403, "The AWS Access Key Id you provided does not exist."),
    ("MissingAuthenticationToken", 403, "Request is missing Authentication Token"),
    # signature and clock skew
    ("InvalidSignatureException", 403, "The request signature we calculated does not match"),
    ("SignatureDoesNotMatch", 403, "The request signature we calculated does not match"),
    ("RequestExpired", 400, "Request has expired."),
    (
        "RequestTimeTooSkewed",
        403,
        "The difference between the request time and the current time is too large.",
    ),
    # permissions
    ("AccessDenied", 403, "User is not authorized to perform: ses:SendEmail"),
    ("AccessDeniedException", 403, "User is not authorized to perform: ses:SendEmail"),
    # sender identity and configuration
    ("MailFromDomainNotVerifiedException", 400, "MAIL FROM domain not verified"),
    ("ConfigurationSetDoesNotExist", 400, "Configuration set <marketing> does not exist."),
    ("ConfigurationSetDoesNotExistException", 400, "Configuration set does not exist."),
    ("NotFoundException", 404, "Configuration set <marketing> does not exist."),
    # sending paused, account or configuration set
    ("AccountSuspendedException", 400, "Your account has been suspended."),
    ("SendingPausedException", 400, "Sending is paused for this account."),
    ("SendingPausedException", 400, "Sending is paused for configuration set marketing."),
    ("AccountSendingPausedException", 400, "Email sending is disabled for your account."),
    ("ConfigurationSetSendingPausedException", 400, "Sending is paused for marketing."),
    # an unverified sender, as SES and moto word it
    (
        "MessageRejected",
        400,
        "Email address is not verified. The following identities "
        "failed the check in region US-EAST-1: news@shop.example",
    ),
    (
        "MessageRejected",
        400,
        "Email address is not verified. The following identities "
        "failed the check in region US-EAST-1: shop.example",
    ),
    ("MessageRejected", 400, "Email address not verified news@shop.example"),
    ("MessageRejected", 400, "Email address is not verified."),
    # a 401/403 whose code is new to us is still the credentials or the permissions
    ("SomeNewAuthException", 403, "denied"),
]


@pytest.mark.parametrize(("code", "status", "message"), ACCOUNT)
def test_account_and_configuration_problems_pause_and_fail_nothing(
    code: str, status: int, message: str
) -> None:
    error = classify(ses_error(code, status, message), EMAIL)
    assert error.kind is ErrorKind.ACCOUNT
    assert code in error.reason and message in error.reason


@pytest.mark.parametrize(
    ("code", "status", "message"),
    [
        ("MessageRejected", 400, "Illegal address"),
        (
            "MessageRejected",
            400,
            "Email address is not verified. The following identities "
            "failed the check in region US-EAST-1: ada@example.com",
        ),
        ("BadRequestException", 400, "Missing final '@domain'"),
        ("InvalidParameterValue", 400, "Local address contains control or whitespace"),
        ("ValidationException", 400, "1 validation error detected"),
    ],
)
def test_the_messages_own_problems_fail_that_message(code: str, status: int, message: str) -> None:
    """A bad recipient or content; an unverified *recipient* (the SES sandbox) too."""
    error = classify(ses_error(code, status, message), EMAIL)
    assert error.kind is ErrorKind.PERMANENT
    assert message in error.reason


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("TooManyRequestsException", 429),
        ("Throttling", 400),
        ("ThrottlingException", 400),
        ("SomethingElse", 429),
    ],
)
def test_throttling_is_retried_without_limit(code: str, status: int) -> None:
    assert classify(ses_error(code, status, "Rate exceeded"), EMAIL).kind is ErrorKind.THROTTLED


def test_limit_exceeded_is_the_rate_or_the_daily_quota() -> None:
    rate = ses_error("LimitExceededException", 400, "Maximum sending rate exceeded.")
    daily = ses_error("LimitExceededException", 400, "Daily message quota exceeded.")
    assert classify(rate).kind is ErrorKind.THROTTLED
    assert classify(daily).kind is ErrorKind.QUOTA


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("InternalFailure", 500),
        ("ServiceUnavailable", 503),
        ("", 502),
        ("InternalError", 400),
    ],
)
def test_server_errors_are_transient(code: str, status: int) -> None:
    assert classify(ses_error(code, status), EMAIL).kind is ErrorKind.TRANSIENT


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("BrandNewSesException", 400),
        ("NotYetInventedException", 409),
        ("", 400),
        ("WeirdThing", 0),
    ],
)
def test_an_unknown_code_is_never_permanent(code: str, status: int) -> None:
    error = classify(ses_error(code, status, "who knows"), EMAIL)
    assert error.kind is ErrorKind.TRANSIENT
    assert "unknown" in error.reason


def test_network_failures_are_transient() -> None:
    assert classify(ConnectTimeoutError(endpoint_url="http://x")).kind is ErrorKind.TRANSIENT
    assert classify(EndpointConnectionError(endpoint_url="http://x")).kind is ErrorKind.TRANSIENT
    assert classify(TimeoutError()).kind is ErrorKind.TRANSIENT
    assert classify(RuntimeError("boom")).kind is ErrorKind.TRANSIENT


@pytest.mark.parametrize(
    ("rule", "kind", "code"),
    [
        (fault("credentials"), ErrorKind.ACCOUNT, "UnrecognizedClientException"),
        (fault("unverified_sender"), ErrorKind.ACCOUNT, "MessageRejected"),
        (fault("no_configuration_set"), ErrorKind.ACCOUNT, "NotFoundException"),
        (fault("suspended"), ErrorKind.ACCOUNT, "AccountSuspendedException"),
        (fault("paused"), ErrorKind.ACCOUNT, "SendingPausedException"),
        (
            fault("error", code="ExpiredTokenException", status=403),
            ErrorKind.ACCOUNT,
            "ExpiredTokenException",
        ),
        (
            fault("error", code="SignatureDoesNotMatch", status=403),
            ErrorKind.ACCOUNT,
            "SignatureDoesNotMatch",
        ),
        (fault("reject", message="Illegal address"), ErrorKind.PERMANENT, "MessageRejected"),
        (
            fault("error", code="BrandNewSesException", status=400, message="new"),
            ErrorKind.TRANSIENT,
            "BrandNewSesException",
        ),
        (fault("throttle"), ErrorKind.THROTTLED, "TooManyRequestsException"),
        (fault("error500"), ErrorKind.TRANSIENT, "InternalFailure"),
    ],
)
async def test_stand_in_answers_through_the_transport_are_classified(
    clean_standin: StandinProcess, rule: dict, kind: ErrorKind, code: str
) -> None:
    url, control = clean_standin
    control.set_faults([rule])
    transport = SesTransport(url, max_in_flight=4, timeout=5)
    try:
        with pytest.raises(SendError) as raised:
            await transport.send("us-east-1", EMAIL)
    finally:
        await transport.close()
    assert raised.value.kind is kind, raised.value.reason
    assert code in raised.value.reason


async def test_a_fault_window_ends_by_itself(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    transport = SesTransport(url, max_in_flight=4, timeout=5)
    try:
        await transport.open(["us-east-1"])  # the client is ready before the window opens
        control.set_faults([fault("credentials", for_s=2)])
        with pytest.raises(SendError):
            await transport.send("us-east-1", EMAIL)
        await asyncio.sleep(2.2)
        assert await transport.send("us-east-1", EMAIL)
    finally:
        await transport.close()
    assert control.stats()["totals"]["faults"] == {"credentials": 1}
    assert control.sent() == 1
