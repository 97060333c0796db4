"""``mailer ses setup --inbound-unsubscribe``'s SES part against moto: the receipt rule
for the unsubscribe domain, publishing to the SNS topic, in the active rule set; read
before written, so a second run changes nothing; the MX record is for that domain only."""

from __future__ import annotations

import pytest

from mailer.ses.aws import Clients, Target
from mailer.ses.inbound_setup import RULE_NAME, RULE_SET, ensure, inbound_domain
from tests.fixtures.moto import REGION, moto_client, moto_url

__all__ = ["moto_url"]
_client = moto_client


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


async def test_the_local_emulator_speaks_the_same_receipt_rule_calls(clean_standin) -> None:  # type: ignore[no-untyped-def]
    url = clean_standin.url
    region = "us-east-1"
    topic = moto_client("sns", url, region).create_topic(Name="mailer-events")["TopicArn"]
    target = Target(url, url, "testing", "testing")
    inbound = "unsubscribe.shop.example"
    async with Clients(target) as aws:
        steps, _ = await ensure(aws, region, inbound, topic, dry_run=False)
        assert [s.action for s in steps] == ["create", "update", "create"]
        again, _ = await ensure(aws, region, inbound, topic, dry_run=False)
        assert [s.action for s in again] == ["ok"]
        # drift: the rule publishing elsewhere is brought back
        other = moto_client("sns", url, region).create_topic(Name="other")["TopicArn"]
        moved, _ = await ensure(aws, region, inbound, other, dry_run=False)
        assert [s.action for s in moved] == ["update"]
    ses = moto_client("ses", url, region)
    active = ses.describe_active_receipt_rule_set()
    assert active["Metadata"]["Name"] == RULE_SET
    (rule,) = active["Rules"]
    assert rule["Name"] == RULE_NAME and rule["Recipients"] == [inbound]
    assert rule["Enabled"] is True and rule["ScanEnabled"] is True
    assert rule["Actions"] == [{"SNSAction": {"TopicArn": other, "Encoding": "UTF-8"}}]
    # as SES: a rule set that exists already, an SNS action to a topic that does not
    with pytest.raises(ses.exceptions.AlreadyExistsException):
        ses.create_receipt_rule_set(RuleSetName=RULE_SET)
    missing = f"arn:aws:sns:{region}:000000000000:missing"
    with pytest.raises(ses.exceptions.InvalidSnsTopicException):
        ses.create_receipt_rule(
            RuleSetName=RULE_SET,
            Rule={"Name": "x", "Actions": [{"SNSAction": {"TopicArn": missing}}]},
        )
