"""The plan of ``mailer ses setup`` for one region, from what the reads found (pure)."""

from __future__ import annotations

import json

from mailer.ses import topic_policy
from mailer.ses.plan import (
    EVENT_TYPES,
    RULE_NAME,
    TOPIC_ARN,
    Found,
    NewTopicPolicy,
    Wanted,
    destination_spec,
    plan_region,
    with_topic,
)

TOPIC = "arn:aws:sns:eu-west-1:123456789012:mailer-ses-events"
WANTED = Wanted(
    domain="example.com",
    mail_from="mail.example.com",
    configuration_sets={"transactional": "tx", "marketing": "tx"},
    webhook_url="https://mail.example.com/webhooks/sns",
    tracking_domain="click.example.com",
)


OWNER = {  # SNS's default statement of a new topic
    "Sid": "__default_statement_ID",
    "Effect": "Allow",
    "Principal": {"AWS": "*"},
    "Action": ["SNS:Publish", "SNS:Subscribe"],
    "Resource": TOPIC,
    "Condition": {"StringEquals": {"AWS:SourceOwner": "123456789012"}},
}


def in_place() -> Found:
    return Found(
        topic_arn=TOPIC,
        topic_policy={
            "Version": "2008-10-17",
            "Statement": [OWNER, topic_policy.statement(TOPIC, ["tx"], RULE_NAME)],
        },
        subscription={"arn": f"{TOPIC}:1", "pending": False, "raw": False},
        sets={
            "tx": {
                "ReputationOptions": {"ReputationMetricsEnabled": True},
                "SendingOptions": {"SendingEnabled": True},
                "TrackingOptions": {"CustomRedirectDomain": "click.example.com"},
            }
        },
        destinations={"tx": {"Name": "mailer-sns", **destination_spec(TOPIC)}},
        identity={
            "DkimAttributes": {
                "SigningAttributesOrigin": "AWS_SES",
                "NextSigningKeyLength": "RSA_2048_BIT",
            },
            "MailFromAttributes": {"MailFromDomain": "mail.example.com"},
        },
    )


def test_nothing_found_plans_every_resource_in_order() -> None:
    steps = plan_region(WANTED, Found())
    assert [(s.resource, s.action) for s in steps] == [
        ("SNS topic mailer-ses-events", "create"),
        ("SNS topic policy mailer-ses-events", "create"),
        ("subscription https://mail.example.com/webhooks/sns", "create"),
        ("configuration set tx", "create"),  # one set shared by two classes: once
        ("event destination tx/mailer-sns", "create"),
        ("identity example.com", "create"),
        ("MAIL FROM mail.example.com", "create"),
    ]
    [policy] = steps[1].calls
    assert (policy.operation, policy.params["AttributeName"]) == ("SetTopicAttributes", "Policy")
    # made once the topic exists, from its ARN and its fresh policy (mailer.ses.setup)
    assert with_topic(policy.params, TOPIC) == {
        "TopicArn": TOPIC,
        "AttributeName": "Policy",
        "AttributeValue": NewTopicPolicy(("tx",)),
    }
    [subscribe] = steps[2].calls
    assert subscribe.params["TopicArn"] == TOPIC_ARN  # filled in once the topic exists
    assert with_topic(subscribe.params, TOPIC)["TopicArn"] == TOPIC
    [create_set] = steps[3].calls
    assert create_set.params["ReputationOptions"] == {"ReputationMetricsEnabled": True}
    assert create_set.params["TrackingOptions"]["CustomRedirectDomain"] == "click.example.com"
    [destination] = steps[4].calls
    assert destination.params["EventDestination"]["MatchingEventTypes"] == list(EVENT_TYPES)


def test_everything_in_place_plans_no_call() -> None:
    steps = plan_region(WANTED, in_place())
    assert {s.action for s in steps} == {"ok"}
    assert [c for s in steps for c in s.calls] == []


def test_drift_is_named_and_repaired() -> None:
    found = in_place()
    found.subscription = {"arn": f"{TOPIC}:1", "pending": False, "raw": True}
    found.sets["tx"]["SendingOptions"] = {"SendingEnabled": False}
    found.sets["tx"]["TrackingOptions"] = {}
    destination = found.destinations["tx"]
    assert destination is not None
    destination["MatchingEventTypes"] = ["BOUNCE"]
    assert found.identity is not None
    found.identity["DkimAttributes"]["NextSigningKeyLength"] = "RSA_1024_BIT"
    found.identity["MailFromAttributes"] = {"MailFromDomain": "bounce.example.com"}
    steps = {s.resource: s for s in plan_region(WANTED, found)}
    sub = steps["subscription https://mail.example.com/webhooks/sns"]
    assert [c.operation for c in sub.calls] == ["SetSubscriptionAttributes"]
    assert [c.operation for c in steps["configuration set tx"].calls] == [
        "PutConfigurationSetSendingOptions",
        "PutConfigurationSetTrackingOptions",
    ]
    assert "DELIVERY" in steps["event destination tx/mailer-sns"].detail
    assert [c.operation for c in steps["identity example.com"].calls] == [
        "PutEmailIdentityDkimSigningAttributes"
    ]
    assert steps["MAIL FROM mail.example.com"].action == "update"
    assert "bounce.example.com" in steps["MAIL FROM mail.example.com"].detail


def test_own_dkim_keys_are_left_alone_and_a_pending_subscription_asks_again() -> None:
    found = in_place()
    assert found.identity is not None
    found.identity["DkimAttributes"] = {"SigningAttributesOrigin": "EXTERNAL"}
    found.subscription = {"arn": None, "pending": True, "raw": False}
    steps = {s.resource: s for s in plan_region(WANTED, found)}
    assert steps["identity example.com"].action == "ok"
    sub = steps["subscription https://mail.example.com/webhooks/sns"]
    assert [c.operation for c in sub.calls] == ["Subscribe"]


def test_the_topic_policy_lets_ses_publish_from_this_account_only() -> None:
    statement = topic_policy.statement(TOPIC, ["tx", "mkt"], RULE_NAME)
    assert statement == {
        "Sid": "mailer-ses-publish",
        "Effect": "Allow",
        "Principal": {"Service": "ses.amazonaws.com"},
        "Action": "SNS:Publish",
        "Resource": TOPIC,
        "Condition": {
            "StringEquals": {"aws:SourceAccount": "123456789012"},
            "ArnLike": {
                "aws:SourceArn": [
                    "arn:aws:ses:eu-west-1:123456789012:configuration-set/tx",
                    "arn:aws:ses:eu-west-1:123456789012:configuration-set/mkt",
                    "arn:aws:ses:eu-west-1:123456789012:receipt-rule-set/*:receipt-rule/"
                    "mailer-unsubscribe",
                ]
            },
        },
    }


def test_a_topic_policy_without_our_statement_gets_it_and_keeps_the_others() -> None:
    found = in_place()
    found.topic_policy = {"Version": "2008-10-17", "Statement": [OWNER]}
    [step] = [s for s in plan_region(WANTED, found) if s.resource.startswith("SNS topic policy")]
    assert step.action == "create"
    [call] = step.calls
    document = json.loads(call.params["AttributeValue"])
    assert call.params["TopicArn"] == TOPIC
    assert document["Statement"] == [OWNER, topic_policy.statement(TOPIC, ["tx"], RULE_NAME)]


def test_a_changed_statement_is_brought_back_and_an_equal_one_is_left_alone() -> None:
    found = in_place()
    assert found.topic_policy is not None
    ours = found.topic_policy["Statement"][1]
    # the same meaning written differently (one ARN as a list, keys reordered) is in place
    ours["Action"] = ["SNS:Publish"]
    ours["Condition"] = dict(reversed(list(ours["Condition"].items())))
    policy_step = next(s for s in plan_region(WANTED, found) if "policy" in s.resource)
    assert policy_step.action == "ok" and policy_step.calls == []
    ours["Condition"]["StringEquals"]["aws:SourceAccount"] = "999999999999"
    policy_step = next(s for s in plan_region(WANTED, found) if "policy" in s.resource)
    assert policy_step.action == "update"
    document = json.loads(policy_step.calls[0].params["AttributeValue"])
    assert document["Statement"] == [OWNER, topic_policy.statement(TOPIC, ["tx"], RULE_NAME)]
