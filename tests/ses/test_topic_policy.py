"""The SNS topic policy ``mailer ses setup`` sets (SES may publish, from this account and
these sources only), checked against moto, an SNS independent of the project's emulator
(``tests/ses/test_setup.py`` runs the whole setup against the emulator)."""

from __future__ import annotations

import json
from typing import Any

from mailer.ses import topic_policy
from mailer.ses.aws import Clients, Target
from mailer.ses.plan import RULE_NAME, Found, NewTopicPolicy, Wanted, plan_region, with_topic
from mailer.ses.setup import new_topic_policy, read_policy
from tests.fixtures.moto import REGION, moto_client, moto_url

__all__ = ["moto_url"]

WANTED = Wanted(
    domain="example.com",
    mail_from="mail.example.com",
    configuration_sets={"transactional": "transactional", "marketing": "marketing"},
    webhook_url="https://mail.example.com/webhooks/sns",
)


def _policy(url: str, arn: str) -> dict[str, Any]:
    attributes = moto_client("sns", url).get_topic_attributes(TopicArn=arn)["Attributes"]
    return dict(json.loads(attributes["Policy"]))


async def _policy_step(aws: Clients, arn: str) -> Any:
    found = Found(topic_arn=arn, topic_policy=await read_policy(aws, REGION, arn))
    return next(s for s in plan_region(WANTED, found) if s.resource.startswith("SNS topic policy"))


async def test_setup_sets_the_policy_once_and_keeps_snss_own_statement(moto_url: str) -> None:
    arn = moto_client("sns", moto_url).create_topic(Name="mailer-ses-events")["TopicArn"]
    account = arn.split(":")[4]
    before = _policy(moto_url, arn)["Statement"]
    target = Target(moto_url, moto_url, "testing", "testing")
    async with Clients(target) as aws:
        step = await _policy_step(aws, arn)
        assert step.action == "create"
        for call in step.calls:
            await aws.call(call.service, REGION, call.operation, **with_topic(call.params, arn))
    statements = _policy(moto_url, arn)["Statement"]
    assert statements[:-1] == before  # the owner's default statement is kept
    ours = statements[-1]
    assert ours["Principal"] == {"Service": "ses.amazonaws.com"}
    assert ours["Condition"]["StringEquals"] == {"aws:SourceAccount": account}
    assert (
        f"arn:aws:ses:{REGION}:{account}:configuration-set/marketing"
        in (ours["Condition"]["ArnLike"]["aws:SourceArn"])
    )
    # a second run finds it in place: no write
    async with Clients(target) as aws:
        again = await _policy_step(aws, arn)
    assert (again.action, again.calls) == ("ok", [])


async def test_a_topic_made_by_the_same_run_gets_the_policy_too(moto_url: str) -> None:
    arn = moto_client("sns", moto_url).create_topic(Name="fresh")["TopicArn"]
    target = Target(moto_url, moto_url, "testing", "testing")
    async with Clients(target) as aws:
        value = await new_topic_policy(aws, REGION, arn, NewTopicPolicy(("transactional",)))
        await aws.call(
            "sns",
            REGION,
            "SetTopicAttributes",
            TopicArn=arn,
            AttributeName="Policy",
            AttributeValue=value,
        )
    document = _policy(moto_url, arn)
    assert topic_policy.in_place(
        document, topic_policy.statement(arn, ["transactional"], RULE_NAME)
    )
    assert len(document["Statement"]) == 2
