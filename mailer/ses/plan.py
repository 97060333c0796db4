"""What ``mailer ses setup`` wants of one region, and the steps that get it there.

Pure: :func:`plan_region` compares the wanted state (:class:`Wanted`) with what the reads
found (:class:`Found`) and returns the steps, each with the AWS calls that would make it
so; nothing here calls AWS, so ``--dry-run`` prints exactly the plan a real run applies.
Steps come in the order the resources depend on each other: the topic, its policy (SES
may publish to it: ``mailer.ses.topic_policy``), its subscription, the configuration sets
and their event destinations, the identity with DKIM, MAIL FROM.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from mailer.ses import topic_policy

# every event type the feedback loop reads (mailer.webhook.process), as SES v2 names them
EVENT_TYPES = (
    "SEND",
    "REJECT",
    "BOUNCE",
    "COMPLAINT",
    "DELIVERY",
    "DELIVERY_DELAY",
    "RENDERING_FAILURE",
    "SUBSCRIPTION",
    "OPEN",
    "CLICK",
)
# what the feedback loop cannot do without (mailer ses check)
REQUIRED_EVENT_TYPES = ("BOUNCE", "COMPLAINT", "DELIVERY")
DESTINATION_NAME = "mailer-sns"
# the receipt rule of inbound unsubscribes (mailer.ses.inbound_setup); the topic policy names it
RULE_NAME = "mailer-unsubscribe"
DEFAULT_TOPIC_NAME = "mailer-ses-events"
DKIM_KEY_LENGTH = "RSA_2048_BIT"
# stands for the topic's ARN in the calls of a plan made before the topic exists
TOPIC_ARN = "<topic ARN>"


@dataclass(frozen=True)
class Wanted:
    domain: str
    mail_from: str
    configuration_sets: dict[str, str]  # mail class -> configuration set
    webhook_url: str
    topic_name: str = DEFAULT_TOPIC_NAME
    tracking_domain: str | None = None

    @property
    def protocol(self) -> str:
        return "http" if self.webhook_url.startswith("http://") else "https"


@dataclass
class Found:
    """What the reads found in one region (None: absent)."""

    topic_arn: str | None = None
    topic_policy: dict[str, Any] | None = None  # the topic's Policy attribute, parsed
    # {"arn": …, "pending": bool, "raw": bool} of the subscription to the webhook URL
    subscription: dict[str, Any] | None = None
    # configuration set -> GetConfigurationSet's answer
    sets: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    # configuration set -> our event destination (GetConfigurationSetEventDestinations)
    destinations: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    identity: dict[str, Any] | None = None  # GetEmailIdentity's answer


@dataclass(frozen=True)
class Call:
    service: str  # "sesv2" or "sns"
    operation: str
    params: dict[str, Any]


@dataclass
class Step:
    resource: str
    action: str  # "create", "update" (drift brought back) or "ok"
    detail: str
    calls: list[Call] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "action": self.action,
            "detail": self.detail,
            "calls": [f"{c.service}:{c.operation}" for c in self.calls],
        }


def plan_region(wanted: Wanted, found: Found) -> list[Step]:
    """The steps that bring one region from ``found`` to ``wanted``, in order."""
    steps = [_topic(wanted, found), _topic_policy(wanted, found), _subscription(wanted, found)]
    topic = found.topic_arn or TOPIC_ARN
    for name in dict.fromkeys(wanted.configuration_sets.values()):
        steps.append(_configuration_set(wanted, name, found.sets.get(name)))
        steps.append(_destination(name, topic, found.destinations.get(name)))
    steps.append(_identity(wanted, found.identity))
    steps.append(_mail_from(wanted, found.identity))
    return steps


def _topic(wanted: Wanted, found: Found) -> Step:
    resource = f"SNS topic {wanted.topic_name}"
    if found.topic_arn:
        return Step(resource, "ok", found.topic_arn)
    return Step(
        resource, "create", "new topic", [Call("sns", "CreateTopic", {"Name": wanted.topic_name})]
    )


@dataclass(frozen=True)
class NewTopicPolicy:
    """Stands for the policy of a topic this run creates: made when the call is made, from
    the new topic's ARN and its fresh policy (``mailer.ses.setup``)."""

    configuration_sets: tuple[str, ...]


def _topic_policy(wanted: Wanted, found: Found) -> Step:
    resource = f"SNS topic policy {wanted.topic_name}"
    detail = "SES may publish (aws:SourceAccount, aws:SourceArn: the sets and the receipt rule)"
    sets = tuple(dict.fromkeys(wanted.configuration_sets.values()))
    if not found.topic_arn:
        value: Any = NewTopicPolicy(sets)
        return Step(resource, "create", detail, [set_policy(TOPIC_ARN, value)])
    wanted_statement = topic_policy.statement(found.topic_arn, sets, RULE_NAME)
    if topic_policy.in_place(found.topic_policy, wanted_statement):
        return Step(resource, "ok", detail)
    document = topic_policy.merged(found.topic_policy, wanted_statement)
    action = "update" if topic_policy.ours(found.topic_policy) else "create"
    return Step(resource, action, detail, [set_policy(found.topic_arn, json.dumps(document))])


def set_policy(topic_arn: str, value: Any) -> Call:
    return Call(
        "sns",
        "SetTopicAttributes",
        {"TopicArn": topic_arn, "AttributeName": "Policy", "AttributeValue": value},
    )


def _subscription(wanted: Wanted, found: Found) -> Step:
    resource = f"subscription {wanted.webhook_url}"
    topic = found.topic_arn or TOPIC_ARN
    subscribe = Call(
        "sns",
        "Subscribe",
        {
            "TopicArn": topic,
            "Protocol": wanted.protocol,
            "Endpoint": wanted.webhook_url,
            "ReturnSubscriptionArn": True,
        },
    )
    sub = found.subscription
    if sub is None:
        return Step(resource, "create", f"{wanted.protocol} subscription", [subscribe])
    if sub["pending"]:
        # SNS sends the confirmation again when the same endpoint subscribes again
        return Step(
            resource, "update", "pending confirmation: confirmation sent again", [subscribe]
        )
    if sub.get("raw"):
        unraw = Call(
            "sns",
            "SetSubscriptionAttributes",
            {
                "SubscriptionArn": sub["arn"],
                "AttributeName": "RawMessageDelivery",
                "AttributeValue": "false",
            },
        )
        return Step(resource, "update", "raw message delivery turned off", [unraw])
    return Step(resource, "ok", "confirmed")


def _configuration_set(wanted: Wanted, name: str, found: dict[str, Any] | None) -> Step:
    resource = f"configuration set {name}"
    tracking = (
        {"CustomRedirectDomain": wanted.tracking_domain, "HttpsPolicy": "REQUIRE"}
        if wanted.tracking_domain
        else None
    )
    if found is None:
        params: dict[str, Any] = {
            "ConfigurationSetName": name,
            "ReputationOptions": {"ReputationMetricsEnabled": True},
            "SendingOptions": {"SendingEnabled": True},
        }
        if tracking:
            params["TrackingOptions"] = tracking
        return Step(
            resource,
            "create",
            "reputation metrics on",
            [Call("sesv2", "CreateConfigurationSet", params)],
        )
    calls, drift = [], []
    if not (found.get("ReputationOptions") or {}).get("ReputationMetricsEnabled"):
        drift.append("reputation metrics turned on")
        calls.append(
            Call(
                "sesv2",
                "PutConfigurationSetReputationOptions",
                {"ConfigurationSetName": name, "ReputationMetricsEnabled": True},
            )
        )
    if (found.get("SendingOptions") or {}).get("SendingEnabled") is False:
        drift.append("sending turned on")
        calls.append(
            Call(
                "sesv2",
                "PutConfigurationSetSendingOptions",
                {"ConfigurationSetName": name, "SendingEnabled": True},
            )
        )
    current = (found.get("TrackingOptions") or {}).get("CustomRedirectDomain")
    if tracking and current != wanted.tracking_domain:
        drift.append(f"tracking domain {current or '(none)'} → {wanted.tracking_domain}")
        calls.append(
            Call(
                "sesv2",
                "PutConfigurationSetTrackingOptions",
                {"ConfigurationSetName": name, **tracking},
            )
        )
    if calls:
        return Step(resource, "update", "; ".join(drift), calls)
    return Step(resource, "ok", "reputation metrics on")


def destination_spec(topic_arn: str) -> dict[str, Any]:
    return {
        "Enabled": True,
        "MatchingEventTypes": list(EVENT_TYPES),
        "SnsDestination": {"TopicArn": topic_arn},
    }


def _destination(name: str, topic_arn: str, found: dict[str, Any] | None) -> Step:
    resource = f"event destination {name}/{DESTINATION_NAME}"
    spec = destination_spec(topic_arn)
    if found is None:
        call = Call(
            "sesv2",
            "CreateConfigurationSetEventDestination",
            {
                "ConfigurationSetName": name,
                "EventDestinationName": DESTINATION_NAME,
                "EventDestination": spec,
            },
        )
        return Step(resource, "create", f"{len(EVENT_TYPES)} event types to SNS", [call])
    drift = []
    if not found.get("Enabled"):
        drift.append("enabled")
    missing = set(EVENT_TYPES) - set(found.get("MatchingEventTypes") or [])
    if missing:
        drift.append(f"event types {', '.join(sorted(missing))} added")
    current = (found.get("SnsDestination") or {}).get("TopicArn")
    if current != topic_arn:
        drift.append(f"topic {current or '(none)'} → {topic_arn}")
    if not drift:
        return Step(resource, "ok", f"{len(EVENT_TYPES)} event types to SNS")
    call = Call(
        "sesv2",
        "UpdateConfigurationSetEventDestination",
        {
            "ConfigurationSetName": name,
            "EventDestinationName": DESTINATION_NAME,
            "EventDestination": spec,
        },
    )
    return Step(resource, "update", "; ".join(drift), [call])


def _identity(wanted: Wanted, found: dict[str, Any] | None) -> Step:
    resource = f"identity {wanted.domain}"
    if found is None:
        call = Call(
            "sesv2",
            "CreateEmailIdentity",
            {
                "EmailIdentity": wanted.domain,
                "DkimSigningAttributes": {"NextSigningKeyLength": DKIM_KEY_LENGTH},
            },
        )
        return Step(resource, "create", "Easy DKIM, RSA 2048", [call])
    dkim = found.get("DkimAttributes") or {}
    if dkim.get("SigningAttributesOrigin", "AWS_SES") != "AWS_SES":
        return Step(resource, "ok", "DKIM: your own keys (BYODKIM), left as they are")
    if dkim.get("NextSigningKeyLength") not in (None, DKIM_KEY_LENGTH):
        call = Call(
            "sesv2",
            "PutEmailIdentityDkimSigningAttributes",
            {
                "EmailIdentity": wanted.domain,
                "SigningAttributesOrigin": "AWS_SES",
                "SigningAttributes": {"NextSigningKeyLength": DKIM_KEY_LENGTH},
            },
        )
        return Step(resource, "update", f"DKIM {dkim['NextSigningKeyLength']} → RSA 2048", [call])
    return Step(resource, "ok", f"Easy DKIM, RSA 2048, {dkim.get('Status', 'unknown')}")


def _mail_from(wanted: Wanted, found: dict[str, Any] | None) -> Step:
    resource = f"MAIL FROM {wanted.mail_from}"
    current = ((found or {}).get("MailFromAttributes") or {}).get("MailFromDomain")
    if current == wanted.mail_from:
        return Step(resource, "ok", "set")
    call = Call(
        "sesv2",
        "PutEmailIdentityMailFromAttributes",
        {
            "EmailIdentity": wanted.domain,
            "MailFromDomain": wanted.mail_from,
            "BehaviorOnMxFailure": "USE_DEFAULT_VALUE",
        },
    )
    action = "create" if current is None else "update"
    return Step(resource, action, f"was {current}" if current else "custom MAIL FROM", [call])


def with_topic(params: dict[str, Any], topic_arn: str) -> dict[str, Any]:
    """``params`` with :data:`TOPIC_ARN` replaced, however deep."""

    def swap(value: Any) -> Any:
        if value == TOPIC_ARN:
            return topic_arn
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list):
            return [swap(v) for v in value]
        return value

    return dict(swap(params))


def dns_records(
    region: str, domain: str, mail_from: str, dkim_tokens: list[str]
) -> list[dict[str, str]]:
    """The DNS records to publish: DKIM CNAMEs, MAIL FROM MX and SPF, a starting DMARC."""
    records = [
        {
            "name": f"{token}._domainkey.{domain}",
            "type": "CNAME",
            "value": f"{token}.dkim.amazonses.com",
            "why": "Easy DKIM",
        }
        for token in dkim_tokens
    ]
    records += [
        {
            "name": mail_from,
            "type": "MX",
            "value": f"10 feedback-smtp.{region}.amazonses.com",
            "why": "MAIL FROM (bounces)",
        },
        {
            "name": mail_from,
            "type": "TXT",
            "value": '"v=spf1 include:amazonses.com ~all"',
            "why": "MAIL FROM (SPF)",
        },
        {
            "name": f"_dmarc.{domain}",
            "type": "TXT",
            "value": f'"{suggested_dmarc(domain)}"',
            "why": "DMARC, monitoring only to start with; tighten to p=quarantine later",
        },
    ]
    return records


def suggested_dmarc(domain: str) -> str:
    """A first DMARC record for ``domain``: monitoring only, aggregate reports to it."""
    return f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"
