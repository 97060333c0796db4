"""``mailer ses setup`` against the local emulator and a real API (issue 20, item 1)."""

from __future__ import annotations

import json
from typing import Any

from mailer.ses.plan import EVENT_TYPES
from tests.ses.conftest import TOPIC, Stack, wait_for

WEBHOOK_PATH = "/webhooks/sns"
SETUP = ("ses", "setup", "--domain", "example.com", "--allow-http", "--wait", "20")


def reads_only(calls: list[str]) -> bool:
    return all(c.split(":", 1)[1].startswith(("Get", "List")) for c in calls)


def subscriptions(stack: Stack) -> list[dict[str, Any]]:
    return list(stack.client("sns").list_subscriptions_by_topic(TopicArn=TOPIC)["Subscriptions"])


def test_setup_creates_every_resource_and_the_webhook_confirms(stack: Stack) -> None:
    code, report = stack.run_json(*SETUP, "--tracking-domain", "click.example.com")
    assert code == 0, report
    [region] = report["regions"]
    assert region["changed"] and region["subscription"] == "confirmed"
    assert region["topic_arn"] == TOPIC
    ses, sns = stack.client("sesv2"), stack.client("sns")

    [sub] = subscriptions(stack)
    assert sub["Protocol"] == "http" and sub["Endpoint"] == stack.api_url + WEBHOOK_PATH
    attributes = sns.get_subscription_attributes(SubscriptionArn=sub["SubscriptionArn"])
    # confirmed by our webhook: it verified the signed confirmation and GOT its SubscribeURL
    assert attributes["Attributes"]["PendingConfirmation"] == "false"
    assert attributes["Attributes"]["ConfirmationWasAuthenticated"] == "true"

    for name in ("transactional", "marketing"):
        found = ses.get_configuration_set(ConfigurationSetName=name)
        assert found["ReputationOptions"]["ReputationMetricsEnabled"] is True
        assert found["TrackingOptions"]["CustomRedirectDomain"] == "click.example.com"
        [destination] = ses.get_configuration_set_event_destinations(ConfigurationSetName=name)[
            "EventDestinations"
        ]
        assert destination["Enabled"] is True
        assert sorted(destination["MatchingEventTypes"]) == sorted(EVENT_TYPES)
        assert destination["SnsDestination"]["TopicArn"] == TOPIC

    # SES may publish to the topic: from this account, for these sets and the receipt rule
    policy = json.loads(sns.get_topic_attributes(TopicArn=TOPIC)["Attributes"]["Policy"])
    ours = next(s for s in policy["Statement"] if s["Sid"] == "mailer-ses-publish")
    assert any(s["Sid"] == "__default_statement_ID" for s in policy["Statement"])
    assert ours["Principal"] == {"Service": "ses.amazonaws.com"}
    assert ours["Action"] == "SNS:Publish" and ours["Resource"] == TOPIC
    assert ours["Condition"]["StringEquals"] == {"aws:SourceAccount": "000000000000"}
    assert sorted(ours["Condition"]["ArnLike"]["aws:SourceArn"]) == [
        "arn:aws:ses:us-east-1:000000000000:configuration-set/marketing",
        "arn:aws:ses:us-east-1:000000000000:configuration-set/transactional",
        "arn:aws:ses:us-east-1:000000000000:receipt-rule-set/*:receipt-rule/mailer-unsubscribe",
    ]

    identity = ses.get_email_identity(EmailIdentity="example.com")
    assert identity["DkimAttributes"]["NextSigningKeyLength"] == "RSA_2048_BIT"
    # what the API's alignment check reads (mailer.ses.senders)
    assert identity["DkimAttributes"]["Status"] == "SUCCESS"
    assert identity["MailFromAttributes"]["MailFromDomain"] == "mail.example.com"
    tokens = identity["DkimAttributes"]["Tokens"]
    records = {(r["type"], r["name"]): r["value"] for r in region["dns"]}
    for token in tokens:
        assert records[("CNAME", f"{token}._domainkey.example.com")] == (
            f"{token}.dkim.amazonses.com"
        )
    assert records[("MX", "mail.example.com")] == "10 feedback-smtp.us-east-1.amazonses.com"
    assert "include:amazonses.com" in records[("TXT", "mail.example.com")]
    assert records[("TXT", "_dmarc.example.com")].startswith('"v=DMARC1; p=none')
    assert report["environment"] == {
        "MAILER_SNS_TOPIC_ARNS": TOPIC,
        "MAILER_CONFIGURATION_SETS": "transactional=transactional,marketing=marketing",
        "MAILER_REGIONS": "us-east-1",
    }


def test_second_run_changes_nothing_and_says_so(stack: Stack) -> None:
    assert stack.run(*SETUP).returncode == 0
    before = stack.account()
    done = stack.run(*SETUP[:-2])
    assert done.returncode == 0, done.stderr
    assert "nothing changed" in done.stdout
    code, report = stack.run_json(*SETUP)
    assert code == 0
    assert report["changed"] is False
    assert {s["action"] for s in report["regions"][0]["steps"]} == {"ok"}
    assert reads_only(report["calls"]), report["calls"]
    assert stack.account() == before


def test_drifted_resources_are_brought_back_and_reported(stack: Stack) -> None:
    assert stack.run(*SETUP).returncode == 0
    ses, sns = stack.client("sesv2"), stack.client("sns")
    ses.delete_configuration_set_event_destination(
        ConfigurationSetName="marketing", EventDestinationName="mailer-sns"
    )
    ses.put_configuration_set_reputation_options(
        ConfigurationSetName="transactional", ReputationMetricsEnabled=False
    )
    [sub] = subscriptions(stack)
    sns.unsubscribe(SubscriptionArn=sub["SubscriptionArn"])
    assert subscriptions(stack) == []
    # someone replaced the topic policy: SES may no longer publish
    sns.set_topic_attributes(
        TopicArn=TOPIC,
        AttributeName="Policy",
        AttributeValue=json.dumps({"Version": "2008-10-17", "Statement": []}),
    )

    code, report = stack.run_json(*SETUP)
    assert code == 0, report
    steps = {s["resource"]: s for s in report["regions"][0]["steps"]}
    assert steps["SNS topic policy mailer-ses-events"]["action"] == "create"
    policy = json.loads(sns.get_topic_attributes(TopicArn=TOPIC)["Attributes"]["Policy"])
    assert [s["Sid"] for s in policy["Statement"]] == ["mailer-ses-publish"]
    assert steps["event destination marketing/mailer-sns"]["action"] == "create"
    assert steps["configuration set transactional"]["action"] == "update"
    assert "reputation metrics" in steps["configuration set transactional"]["detail"]
    assert steps[f"subscription {stack.api_url}{WEBHOOK_PATH}"]["action"] == "create"
    assert steps["event destination transactional/mailer-sns"]["action"] == "ok"
    assert report["regions"][0]["subscription"] == "confirmed"
    assert ses.get_configuration_set_event_destinations(ConfigurationSetName="marketing")[
        "EventDestinations"
    ]
    [sub] = subscriptions(stack)
    assert sub["SubscriptionArn"].startswith("arn:")


def untouched(account: dict[str, Any]) -> bool:
    """The emulator's account as it starts: no topic, no identity, the default sets bare."""
    regions = account["regions"].values()
    return account["sns"]["topics"] == {} and all(
        not r["identities"]
        and set(r["configuration_sets"]) == {"transactional", "marketing"}
        and all(
            not s["EventDestinations"] and not s["ReputationOptions"]["ReputationMetricsEnabled"]
            for s in r["configuration_sets"].values()
        )
        for r in regions
    )


def test_dry_run_reads_plans_and_changes_nothing(stack: Stack) -> None:
    assert untouched(stack.account())
    code, report = stack.run_json(*SETUP, "--dry-run")
    assert code == 0
    assert report["dry_run"] is True
    actions = {s["resource"]: s["action"] for s in report["regions"][0]["steps"]}
    assert actions["SNS topic mailer-ses-events"] == "create"
    assert actions["identity example.com"] == "create"
    assert reads_only(report["calls"]), report["calls"]
    assert untouched(stack.account())


def test_an_http_webhook_is_refused_without_allow_http(stack: Stack) -> None:
    done = stack.run("ses", "setup", "--domain", "example.com")
    assert done.returncode == 2
    assert "https" in done.stderr
    assert stack.account()["sns"]["topics"] == {}


def test_a_topic_the_api_does_not_allow_stays_pending(stack: Stack) -> None:
    other = "arn:aws:sns:us-east-1:000000000000:not-allowed"
    code, report = stack.run_json(*SETUP[:-1], "0", MAILER_SNS_TOPIC_ARNS=other)
    assert report["regions"][0]["topic_arn"] == other
    # the positive event: the webhook answered the emulator's confirmation (with a 403)
    wait_for(lambda: stack.account()["sns"]["confirmations_sent"] == 1, "the webhook's answer")
    [sub] = stack.client("sns").list_subscriptions_by_topic(TopicArn=other)["Subscriptions"]
    assert sub["SubscriptionArn"] == "PendingConfirmation"
    assert code == 1


def test_inbound_unsubscribes_are_set_up_against_the_emulator_too(stack: Stack) -> None:
    code, report = stack.run_json(*SETUP, "--inbound-unsubscribe")
    assert code == 0, report
    steps = {s["resource"]: s["action"] for s in report["regions"][0]["steps"]}
    rule = "receipt rule mailer-unsubscribe (unsubscribe.example.com → SNS)"
    assert steps[rule] == "create"
    assert report["environment"]["MAILER_INBOUND_UNSUBSCRIBE_DOMAIN"] == "unsubscribe.example.com"
    records = {(r["type"], r["name"]): r["value"] for r in report["regions"][0]["dns"]}
    assert records[("MX", "unsubscribe.example.com")] == "10 inbound-smtp.us-east-1.amazonaws.com"
    [active] = stack.client("ses").describe_active_receipt_rule_set()["Rules"]
    assert active["Actions"] == [{"SNSAction": {"TopicArn": TOPIC, "Encoding": "UTF-8"}}]

    code, report = stack.run_json(*SETUP, "--inbound-unsubscribe")
    assert code == 0 and report["changed"] is False, report
    assert reads_only([c for c in report["calls"] if "ses:Describe" not in c]), report["calls"]
