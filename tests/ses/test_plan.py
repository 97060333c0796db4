"""The plan of ``mailer ses setup`` for one region, from what the reads found (pure)."""

from __future__ import annotations

from mailer.ses.plan import (
    EVENT_TYPES,
    TOPIC_ARN,
    Found,
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


def in_place() -> Found:
    return Found(
        topic_arn=TOPIC,
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
        ("subscription https://mail.example.com/webhooks/sns", "create"),
        ("configuration set tx", "create"),  # one set shared by two classes: once
        ("event destination tx/mailer-sns", "create"),
        ("identity example.com", "create"),
        ("MAIL FROM mail.example.com", "create"),
    ]
    [subscribe] = steps[1].calls
    assert subscribe.params["TopicArn"] == TOPIC_ARN  # filled in once the topic exists
    assert with_topic(subscribe.params, TOPIC)["TopicArn"] == TOPIC
    [create_set] = steps[2].calls
    assert create_set.params["ReputationOptions"] == {"ReputationMetricsEnabled": True}
    assert create_set.params["TrackingOptions"]["CustomRedirectDomain"] == "click.example.com"
    [destination] = steps[3].calls
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
