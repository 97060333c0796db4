"""``mailer ses setup --inbound-unsubscribe``: SES receives unsubscribe mail.

Per region, read before written (a second run changes nothing): the active receipt rule
set (``mailer`` created and made active when there is none), and in it the rule
``mailer-unsubscribe`` for the unsubscribe domain only, whose action publishes the
received mail to the SNS topic the webhook is subscribed to (the notification carries
the addresses and the subject: the token is in both; :mod:`mailer.deliverability.inbound`).
The unsubscribe domain is a domain of its own (default ``unsubscribe.<domain>``): its MX
points to SES inbound, and the From domain's own MX, where people's replies go, is never
touched.
"""

from __future__ import annotations

from typing import Any

from mailer.ses.aws import Clients
from mailer.ses.plan import RULE_NAME, Call, Step

RULE_SET = "mailer"
__all__ = ["RULE_NAME", "RULE_SET", "ensure", "inbound_domain", "plan"]


def inbound_domain(domain: str, given: str | None) -> str:
    """The unsubscribe domain: the one configured, else ``unsubscribe.<domain>``."""
    return (given or f"unsubscribe.{domain}").strip().lower()


def wanted_rule(inbound: str, topic_arn: str) -> dict[str, Any]:
    return {
        "Name": RULE_NAME,
        "Enabled": True,
        "TlsPolicy": "Optional",
        "Recipients": [inbound],
        "Actions": [{"SNSAction": {"TopicArn": topic_arn, "Encoding": "UTF-8"}}],
        "ScanEnabled": True,
    }


def _same(found: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(found.get(k) == v for k, v in wanted.items())


async def plan(aws: Clients, region: str, inbound: str, topic_arn: str) -> list[Step]:
    """The steps that make SES receive ``inbound``'s mail into the topic (reads only)."""
    steps: list[Step] = []
    active = await aws.call("ses", region, "DescribeActiveReceiptRuleSet")
    rule_set = (active.get("Metadata") or {}).get("Name")
    rules = active.get("Rules") or []
    if rule_set is None:
        rule_set = RULE_SET
        listed = await aws.call("ses", region, "ListReceiptRuleSets")
        names = {s.get("Name") for s in listed.get("RuleSets") or []}
        if RULE_SET in names:
            found = await aws.call("ses", region, "DescribeReceiptRuleSet", RuleSetName=RULE_SET)
            rules = found.get("Rules") or []
        else:
            steps.append(
                Step(
                    f"receipt rule set {RULE_SET}",
                    "create",
                    "no receipt rule set is active",
                    [Call("ses", "CreateReceiptRuleSet", {"RuleSetName": RULE_SET})],
                )
            )
        steps.append(
            Step(
                f"receipt rule set {RULE_SET}",
                "update",
                "made the active one",
                [Call("ses", "SetActiveReceiptRuleSet", {"RuleSetName": RULE_SET})],
            )
        )
    wanted = wanted_rule(inbound, topic_arn)
    existing = next((r for r in rules if r.get("Name") == RULE_NAME), None)
    resource = f"receipt rule {RULE_NAME} ({inbound} → SNS)"
    if existing is None:
        steps.append(
            Step(
                resource,
                "create",
                f"mail to {inbound} published to {topic_arn}",
                [Call("ses", "CreateReceiptRule", {"RuleSetName": rule_set, "Rule": wanted})],
            )
        )
    elif not _same(existing, wanted):
        steps.append(
            Step(
                resource,
                "update",
                "brought back to its recipients and SNS action",
                [Call("ses", "UpdateReceiptRule", {"RuleSetName": rule_set, "Rule": wanted})],
            )
        )
    else:
        steps.append(Step(resource, "ok", f"mail to {inbound} published to {topic_arn}"))
    return steps


def dns_record(region: str, inbound: str) -> dict[str, str]:
    return {
        "name": inbound,
        "type": "MX",
        "value": f"10 inbound-smtp.{region}.amazonaws.com",
        "why": "unsubscribe mail to SES inbound (this domain only: never the From domain's MX)",
    }


async def ensure(
    aws: Clients, region: str, inbound: str, topic_arn: str, *, dry_run: bool
) -> tuple[list[Step], dict[str, str]]:
    """Plan, then (unless ``dry_run``) apply; the steps and the MX record to publish."""
    steps = await plan(aws, region, inbound, topic_arn)
    if not dry_run:
        for step in steps:
            for call in step.calls:
                await aws.call(call.service, region, call.operation, **call.params)
    return steps, dns_record(region, inbound)
