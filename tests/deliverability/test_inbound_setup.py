"""``mailer ses setup --inbound-unsubscribe``'s SES part against moto: the receipt rule
for the unsubscribe domain, publishing to the SNS topic, in the active rule set; read
before written, so a second run changes nothing; the MX record is for that domain only."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import httpx
import pytest
from moto.server import ThreadedMotoServer

from mailer.ses.aws import Clients, Target
from mailer.ses.inbound_setup import RULE_NAME, RULE_SET, ensure, inbound_domain

REGION = "eu-west-1"


@pytest.fixture
def moto_url() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        url = f"http://{host}:{port}"
        httpx.post(f"{url}/moto-api/reset", timeout=10)  # moto's state is per process
        yield url
    finally:
        server.stop()


def _client(service: str, url: str):  # type: ignore[no-untyped-def]
    return boto3.client(
        service,
        region_name=REGION,
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106
    )


def test_the_unsubscribe_domain_is_its_own() -> None:
    assert inbound_domain("shop.example", None) == "unsubscribe.shop.example"
    assert inbound_domain("shop.example", "Unsub.Shop.Example") == "unsub.shop.example"


async def test_the_receipt_rule_is_made_once_and_publishes_to_the_topic(moto_url: str) -> None:
    topic = _client("sns", moto_url).create_topic(Name="mailer-events")["TopicArn"]
    target = Target(moto_url, moto_url, "testing", "testing")
    inbound = "unsubscribe.shop.example"
    async with Clients(target) as aws:
        steps, record = await ensure(aws, REGION, inbound, topic, dry_run=False)
    assert [s.action for s in steps] == ["create", "update", "create"]
    assert record == {
        "name": inbound,
        "type": "MX",
        "value": f"10 inbound-smtp.{REGION}.amazonaws.com",
        "why": record["why"],
    }
    active = _client("ses", moto_url).describe_active_receipt_rule_set()
    assert active["Metadata"]["Name"] == RULE_SET
    (rule,) = active["Rules"]
    assert rule["Name"] == RULE_NAME and rule["Recipients"] == [inbound]
    assert rule["Actions"] == [{"SNSAction": {"TopicArn": topic, "Encoding": "UTF-8"}}]

    async with Clients(target) as aws:
        again, _ = await ensure(aws, REGION, inbound, topic, dry_run=False)
        assert [s.action for s in again] == ["ok"]
        writes = [c for c in aws.calls if not c.split(":", 1)[1].startswith(("Describe", "List"))]
        assert writes == []


async def test_a_dry_run_plans_and_changes_nothing(moto_url: str) -> None:
    target = Target(moto_url, moto_url, "testing", "testing")
    async with Clients(target) as aws:
        steps, _ = await ensure(aws, REGION, "u.shop.example", "arn:t", dry_run=True)
    assert [s.action for s in steps] == ["create", "update", "create"]
    assert _client("ses", moto_url).list_receipt_rule_sets().get("RuleSets", []) == []
