"""The SES stand-in answers real boto3 and aiobotocore sesv2 clients the way SES does."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import boto3
import httpx
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from mailer.local.standin_client import AsyncStandinControl, fault
from tests.fixtures.standin import StandinProcess, clean_standin, standin, start_standin

__all__ = ["clean_standin", "standin"]  # fixtures used below

CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
NO_RETRIES = {"total_max_attempts": 1}


def ses(url: str, region: str = "us-east-1", **config: Any) -> Any:
    return boto3.client(
        "sesv2",
        region_name=region,
        endpoint_url=url,
        config=Config(retries=NO_RETRIES, **config),
        **CREDENTIALS,
    )


def aio_ses(url: str, region: str = "us-east-1", **config: Any) -> Any:
    return get_session().create_client(
        "sesv2",
        region_name=region,
        endpoint_url=url,
        config=AioConfig(retries=NO_RETRIES, **config),
        **CREDENTIALS,
    )


def email(to: str = "someone@example.com", subject: str = "Hello") -> dict[str, Any]:
    return {
        "FromEmailAddress": "news@example.com",
        "Destination": {"ToAddresses": [to]},
        "Content": {
            "Simple": {
                "Subject": {"Data": subject},
                "Body": {"Html": {"Data": "<p>Hi</p>"}, "Text": {"Data": "Hi"}},
            }
        },
    }


def error_code(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def test_send_records_the_whole_request(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    request = email("Reader@Example.com", "Issue 1")
    request["Content"]["Simple"]["Headers"] = [
        {"Name": "List-Unsubscribe", "Value": "<https://example.com/u/t>"},
        {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
    ]
    answer = ses(url).send_email(
        **request,
        ReplyToAddresses=["reply@example.com"],
        EmailTags=[
            {"Name": "mail_class", "Value": "marketing"},
            {"Name": "campaign_id", "Value": "7"},
        ],
        ConfigurationSetName="marketing",
    )

    [message] = control.messages()
    assert message["MessageId"] == answer["MessageId"]
    assert message["seq"] == 1
    assert message["region"] == "us-east-1"
    assert message["Destination"] == {"ToAddresses": ["Reader@Example.com"]}
    assert message["ReplyToAddresses"] == ["reply@example.com"]
    assert message["ConfigurationSetName"] == "marketing"
    assert message["EmailTags"] == [
        {"Name": "mail_class", "Value": "marketing"},
        {"Name": "campaign_id", "Value": "7"},
    ]
    simple = message["Content"]["Simple"]
    assert simple["Subject"]["Data"] == "Issue 1"
    assert simple["Headers"][1] == {
        "Name": "List-Unsubscribe-Post",
        "Value": "List-Unsubscribe=One-Click",
    }


def test_raw_content_is_recorded(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    ses(url).send_email(
        FromEmailAddress="news@example.com",
        Destination={"ToAddresses": ["a@example.com"]},
        Content={"Raw": {"Data": b"Subject: raw\r\n\r\nbody"}},
    )
    [message] = control.messages()
    assert "Data" in message["Content"]["Raw"]


def test_region_comes_from_the_credential_scope(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    ses(url, "eu-west-1").send_email(**email("eu@example.com"))
    ses(url, "us-east-1").send_email(**email("us@example.com"))

    regions = {m["Destination"]["ToAddresses"][0]: m["region"] for m in control.messages()}
    assert regions == {"eu@example.com": "eu-west-1", "us@example.com": "us-east-1"}
    assert control.messages(region="eu-west-1")[0]["region"] == "eu-west-1"
    assert control.stats()["regions"]["eu-west-1"]["sent"] == 1


def test_get_account_reports_the_region_quota(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    control.set_rates({"eu-west-1": 42}, max_24h={"eu-west-1": 5000})
    ses(url, "eu-west-1").send_email(**email())

    account = ses(url, "eu-west-1").get_account()
    assert account["SendingEnabled"] is True
    assert account["ProductionAccessEnabled"] is True
    assert account["SendQuota"] == {
        "Max24HourSend": 5000.0,
        "MaxSendRate": 42.0,
        "SentLast24Hours": 1.0,
    }


def test_email_identities_are_created_once(clean_standin: StandinProcess) -> None:
    url, _ = clean_standin
    client = ses(url)
    created = client.create_email_identity(EmailIdentity="news@example.com")
    assert created["IdentityType"] == "EMAIL_ADDRESS"
    assert created["VerifiedForSendingStatus"] is True
    assert client.get_email_identity(EmailIdentity="news@example.com")["VerifiedForSendingStatus"]
    with pytest.raises(ClientError) as exc:
        client.create_email_identity(EmailIdentity="news@example.com")
    assert error_code(exc.value) == "AlreadyExistsException"


async def test_sends_over_the_rate_are_throttled(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    control.set_rates({"us-east-1": 5})
    async with aio_ses(url, max_pool_connections=10) as client:
        results = await asyncio.gather(
            *(client.send_email(**email(f"r{i}@example.com")) for i in range(8)),
            return_exceptions=True,
        )

    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 3
    for error in errors:
        assert isinstance(error, ClientError)
        assert error_code(error) == "TooManyRequestsException"
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert error.response["Error"]["Message"] == "Maximum sending rate exceeded."
    stats = control.stats()["regions"]["us-east-1"]
    assert (stats["sent"], stats["throttled"], stats["max_window"]) == (5, 3, 5)
    assert len(control.messages()) == 5


def test_daily_quota_is_enforced(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    control.set_rates(max_24h={"us-east-1": 2})
    client = ses(url)
    client.send_email(**email())
    client.send_email(**email())
    with pytest.raises(ClientError) as exc:
        client.send_email(**email())
    assert error_code(exc.value) == "LimitExceededException"
    assert exc.value.response["Error"]["Message"] == "Daily message quota exceeded."
    assert control.stats()["regions"]["us-east-1"]["quota_exceeded"] == 1


@pytest.mark.parametrize(
    ("kind", "code", "status"),
    [
        ("throttle", "TooManyRequestsException", 429),
        ("error500", "InternalFailure", 500),
        ("reject", "MessageRejected", 400),
        ("paused", "SendingPausedException", 400),
        ("suspended", "AccountSuspendedException", 400),
        ("quota", "LimitExceededException", 400),
    ],
)
def test_scheduled_fault_surfaces_as_the_ses_error(
    clean_standin: StandinProcess, kind: str, code: str, status: int
) -> None:
    url, control = clean_standin
    control.set_faults([fault(kind, count=2)])
    client = ses(url)
    for _ in range(2):
        with pytest.raises(ClientError) as exc:
            client.send_email(**email())
        assert error_code(exc.value) == code
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == status
    client.send_email(**email())  # the schedule is used up

    stats = control.stats()["regions"]["us-east-1"]
    assert stats["faults"] == {kind: 2}
    assert stats["sent"] == 1
    assert len(control.messages()) == 1  # faulted calls are not recorded as sent


def test_paused_fault_is_a_modeled_exception(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    control.set_faults([fault("paused", count=1)])
    client = ses(url)
    with pytest.raises(client.exceptions.SendingPausedException):
        client.send_email(**email())


def test_fault_applies_only_to_its_region(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    control.set_faults([fault("reject", region="eu-west-1")])
    ses(url, "us-east-1").send_email(**email())
    with pytest.raises(ClientError) as exc:
        ses(url, "eu-west-1").send_email(**email())
    assert error_code(exc.value) == "MessageRejected"


def test_region_down_fails_every_call_until_cleared(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    control.set_faults([fault("region_down", region="eu-west-1")])
    down = ses(url, "eu-west-1")
    for call in (lambda: down.send_email(**email()), down.get_account):
        with pytest.raises(ClientError) as exc:
            call()
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    ses(url, "us-east-1").send_email(**email())

    control.clear_faults()
    down.send_email(**email())
    assert control.stats()["regions"]["eu-west-1"]["sent"] == 1


def test_fault_probability(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    control.set_faults([fault("error500", probability=0.5)])
    client = ses(url)
    failed = 0
    for _ in range(200):
        try:
            client.send_email(**email())
        except ClientError:
            failed += 1
    assert 60 < failed < 140
    assert control.stats()["regions"]["us-east-1"]["sent"] == 200 - failed


async def test_timeout_fault_is_a_read_timeout_and_blocks_nothing_else(
    clean_standin: StandinProcess,
) -> None:
    url, control = clean_standin
    control.set_faults([fault("timeout", count=1, hold_s=3)])
    async with aio_ses(url, read_timeout=0.5, max_pool_connections=10) as client:
        held = asyncio.create_task(client.send_email(**email("held@example.com")))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await asyncio.gather(*(client.send_email(**email()) for _ in range(5)))
        assert time.monotonic() - started < 1.5  # not held behind the 3 s timeout
        with pytest.raises(ReadTimeoutError):
            await held
    stats = control.stats()["regions"]["us-east-1"]
    assert (stats["sent"], stats["faults"]) == (5, {"timeout": 1})


def test_timeout_fault_with_boto3(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    control.set_faults([fault("timeout", count=1, hold_s=2)])
    with pytest.raises(ReadTimeoutError):
        ses(url, read_timeout=0.3).send_email(**email())
    assert control.messages() == []


def test_latency_is_added_per_region(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    control.set_latency(200, region="eu-west-1")
    fast, slow = ses(url, "us-east-1"), ses(url, "eu-west-1")
    fast.send_email(**email())  # warm both connections
    slow.get_account()

    started = time.monotonic()
    fast.send_email(**email())
    assert time.monotonic() - started < 0.2
    started = time.monotonic()
    slow.send_email(**email())
    assert 0.2 <= time.monotonic() - started < 1.0


async def test_latency_is_hidden_by_calls_in_flight(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    control.set_latency(200)
    async with aio_ses(url, max_pool_connections=50) as client:
        await client.get_account()
        started = time.monotonic()
        await asyncio.gather(*(client.send_email(**email()) for _ in range(50)))
        elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 2.0  # 50 calls one after the other would take 10 s


def test_calls_have_monotonic_timestamps(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    before = time.monotonic()
    client = ses(url, "eu-west-1")
    client.send_email(**email())
    client.send_email(**email())
    after = time.monotonic()

    calls = control.calls()
    assert [c["seq"] for c in calls] == [1, 2]
    assert all(before <= c["t"] <= after for c in calls)
    assert calls[0]["region"] == "eu-west-1"
    assert control.calls(since=1) == calls[1:]
    assert [m["seq"] for m in control.messages(since=1)] == [2]


def test_reset_forgets_sends_faults_and_latency(clean_standin: StandinProcess) -> None:
    url, control = clean_standin
    ses(url).send_email(**email())
    control.set_faults([fault("reject")])
    control.set_latency(2000)
    control.reset()

    started = time.monotonic()
    ses(url).send_email(**email())
    assert time.monotonic() - started < 1.0
    assert [m["seq"] for m in control.messages()] == [1]


async def test_async_control(clean_standin: StandinProcess) -> None:
    url, _ = clean_standin
    control = AsyncStandinControl(url)
    try:
        await control.set_faults([fault("throttle", count=1)])
        async with aio_ses(url) as client:
            with pytest.raises(ClientError) as exc:
                await client.send_email(**email())
            await client.send_email(**email())
        assert error_code(exc.value) == "TooManyRequestsException"
        assert await control.sent() == 1
        assert len(await control.messages()) == 1
    finally:
        await control.aclose()


def test_summary_mode_keeps_recipients_subject_and_tags() -> None:
    with start_standin(record="summary", rates={"us-east-1": 1000}) as proc:
        ses(proc.url).send_email(
            **email("x@example.com", "Sub"), EmailTags=[{"Name": "a", "Value": "b"}]
        )
        [message] = proc.control.messages()
        assert message["Destination"] == {"ToAddresses": ["x@example.com"]}
        assert message["Subject"] == "Sub"
        assert message["EmailTags"] == [{"Name": "a", "Value": "b"}]
        assert "Content" not in message
        assert proc.control.stats()["regions"]["us-east-1"]["rate"] == 1000


def test_bad_control_input_is_a_400_and_changes_nothing(clean_standin: StandinProcess) -> None:
    _, control = clean_standin
    control.set_faults([fault("reject", count=1)])
    with pytest.raises(httpx.HTTPStatusError) as exc:
        control.set_faults([{"kind": "meteor"}])
    assert exc.value.response.status_code == 400
    assert [f["kind"] for f in control.stats()["faults"]] == ["reject"]
