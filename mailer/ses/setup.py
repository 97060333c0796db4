"""``mailer ses setup``: read each region's resources, plan (``mailer.ses.plan``), apply.

Every resource is read before anything is written, so a second run makes no call that
changes anything and says so, and a resource that drifted (a deleted event destination or
subscription, reputation metrics turned off, raw message delivery turned on) is brought
back and reported. ``dry_run`` stops after the reads and the plan.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from mailer.config import Settings
from mailer.ses import inbound_setup, topic_policy
from mailer.ses.aws import Clients
from mailer.ses.plan import (
    DEFAULT_TOPIC_NAME,
    DESTINATION_NAME,
    RULE_NAME,
    TOPIC_ARN,
    Found,
    NewTopicPolicy,
    Step,
    Wanted,
    dns_records,
    plan_region,
    with_topic,
)

WEBHOOK_PATH = "/webhooks/sns"


class SetupRefused(Exception):
    """A setup that must not run as asked (an http:// webhook without --allow-http)."""


@dataclass
class RegionResult:
    region: str
    steps: list[Step]
    topic_arn: str | None = None
    subscription: str = "absent"  # "confirmed", "pending" or "absent"
    dns: list[dict[str, str]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(s.action != "ok" for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        return {
            "region": self.region,
            "changed": self.changed,
            "topic_arn": self.topic_arn,
            "subscription": self.subscription,
            "steps": [s.to_json() for s in self.steps],
            "dns": self.dns,
        }


def webhook_url(settings: Settings, *, allow_http: bool) -> str:
    url = settings.public_url.rstrip("/") + WEBHOOK_PATH
    if url.startswith("https://"):
        return url
    if url.startswith("http://") and allow_http:
        return url
    raise SetupRefused(
        f"MAILER_PUBLIC_URL is {settings.public_url!r}: SNS must reach {WEBHOOK_PATH} over "
        "https (set MAILER_PUBLIC_URL=https://…; --allow-http for a local stack only)"
    )


def topic_name(settings: Settings, region: str, default: str = DEFAULT_TOPIC_NAME) -> str:
    """The name of the topic MAILER_SNS_TOPIC_ARNS already names in ``region``, if any."""
    for arn in settings.sns_topic_arns:
        parts = arn.split(":")
        if len(parts) == 6 and parts[2] == "sns" and parts[3] == region:
            return parts[5]
    return default


async def find(aws: Clients, region: str, wanted: Wanted) -> Found:
    """The reads: topic, subscription, configuration sets, event destinations, identity."""
    found = Found()
    topics = await aws.pages("sns", region, "ListTopics", "Topics")
    found.topic_arn = next(
        (t["TopicArn"] for t in topics if t["TopicArn"].rsplit(":", 1)[-1] == wanted.topic_name),
        None,
    )
    if found.topic_arn:
        found.topic_policy = await read_policy(aws, region, found.topic_arn)
        subs = await aws.pages(
            "sns", region, "ListSubscriptionsByTopic", "Subscriptions", TopicArn=found.topic_arn
        )
        mine = [s for s in subs if s.get("Endpoint") == wanted.webhook_url]
        confirmed = [s for s in mine if s["SubscriptionArn"].startswith("arn:")]
        if confirmed:
            attributes = await aws.call(
                "sns",
                region,
                "GetSubscriptionAttributes",
                SubscriptionArn=confirmed[0]["SubscriptionArn"],
            )
            attrs = attributes.get("Attributes") or {}
            found.subscription = {
                "arn": confirmed[0]["SubscriptionArn"],
                "pending": attrs.get("PendingConfirmation") == "true",
                "raw": attrs.get("RawMessageDelivery") == "true",
            }
        elif mine:
            found.subscription = {"arn": None, "pending": True, "raw": False}
    for name in dict.fromkeys(wanted.configuration_sets.values()):
        found.sets[name] = await aws.find(
            "sesv2", region, "GetConfigurationSet", ConfigurationSetName=name
        )
        if found.sets[name] is None:
            continue
        answer = await aws.call(
            "sesv2", region, "GetConfigurationSetEventDestinations", ConfigurationSetName=name
        )
        found.destinations[name] = next(
            (d for d in answer.get("EventDestinations") or [] if d["Name"] == DESTINATION_NAME),
            None,
        )
    found.identity = await aws.find(
        "sesv2", region, "GetEmailIdentity", EmailIdentity=wanted.domain
    )
    return found


async def read_policy(aws: Clients, region: str, topic_arn: str) -> dict[str, Any] | None:
    answer = await aws.call("sns", region, "GetTopicAttributes", TopicArn=topic_arn)
    return topic_policy.parse((answer.get("Attributes") or {}).get("Policy"))


async def new_topic_policy(
    aws: Clients, region: str, topic_arn: str, wanted: NewTopicPolicy
) -> str:
    """The policy of a topic this run created: its fresh one (SNS's default statement for
    the owner) with ours merged in."""
    statement = topic_policy.statement(topic_arn, wanted.configuration_sets, RULE_NAME)
    current = await read_policy(aws, region, topic_arn)
    return json.dumps(topic_policy.merged(current, statement))


async def setup_region(
    aws: Clients, region: str, wanted: Wanted, *, dry_run: bool, wait_seconds: float
) -> RegionResult:
    found = await find(aws, region, wanted)
    steps = plan_region(wanted, found)
    result = RegionResult(region, steps, topic_arn=found.topic_arn)
    if found.subscription is not None:
        result.subscription = "pending" if found.subscription["pending"] else "confirmed"
    tokens = ((found.identity or {}).get("DkimAttributes") or {}).get("Tokens") or []
    if not dry_run:
        topic = found.topic_arn or TOPIC_ARN
        for step in steps:
            for call in step.calls:
                params = with_topic(call.params, topic)
                if isinstance(params.get("AttributeValue"), NewTopicPolicy):
                    params["AttributeValue"] = await new_topic_policy(
                        aws, region, topic, params["AttributeValue"]
                    )
                answer = await aws.call(call.service, region, call.operation, **params)
                if call.operation == "CreateTopic":
                    topic = answer["TopicArn"]
                    result.topic_arn = topic
                elif call.operation == "CreateEmailIdentity":
                    tokens = (answer.get("DkimAttributes") or {}).get("Tokens") or []
                elif call.operation == "Subscribe":
                    result.subscription = "pending"
        if result.subscription == "pending" and result.topic_arn:
            confirmed = await wait_confirmed(aws, region, result.topic_arn, wanted, wait_seconds)
            result.subscription = "confirmed" if confirmed else "pending"
    result.dns = dns_records(region, wanted.domain, wanted.mail_from, list(tokens))
    return result


async def wait_confirmed(
    aws: Clients, region: str, topic_arn: str, wanted: Wanted, seconds: float
) -> bool:
    """Whether the webhook confirmed the subscription within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        subs = await aws.pages(
            "sns", region, "ListSubscriptionsByTopic", "Subscriptions", TopicArn=topic_arn
        )
        if any(
            s.get("Endpoint") == wanted.webhook_url and s["SubscriptionArn"].startswith("arn:")
            for s in subs
        ):
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.5)


async def run_setup(
    aws: Clients,
    settings: Settings,
    *,
    domain: str,
    regions: list[str],
    mail_from: str | None = None,
    tracking_domain: str | None = None,
    allow_http: bool = False,
    dry_run: bool = False,
    wait_seconds: float = 30.0,
    inbound_unsubscribe: bool = False,
) -> dict[str, Any]:
    """Set up every region; the report (``--json``) with the settings to put in place."""
    url = webhook_url(settings, allow_http=allow_http)
    inbound = (
        inbound_setup.inbound_domain(domain, settings.inbound_unsubscribe_domain)
        if inbound_unsubscribe
        else None
    )
    results = []
    for region in regions:
        wanted = Wanted(
            domain=domain,
            mail_from=mail_from or f"mail.{domain}",
            configuration_sets=dict(settings.configuration_sets),
            webhook_url=url,
            topic_name=topic_name(settings, region),
            tracking_domain=tracking_domain,
        )
        result = await setup_region(aws, region, wanted, dry_run=dry_run, wait_seconds=wait_seconds)
        if inbound is not None:
            steps, record = await inbound_setup.ensure(
                aws, region, inbound, result.topic_arn or TOPIC_ARN, dry_run=dry_run
            )
            result.steps += steps
            result.dns.append(record)
        results.append(result)
    env = environment(settings, regions, results)
    if inbound is not None:
        env["MAILER_INBOUND_UNSUBSCRIBE_DOMAIN"] = inbound
    return {
        "dry_run": dry_run,
        "changed": any(r.changed for r in results),
        "webhook_url": url,
        "regions": [r.to_json() for r in results],
        "environment": env,
        "calls": aws.calls,
    }


def environment(
    settings: Settings, regions: list[str], results: list[RegionResult]
) -> dict[str, str]:
    """The settings that make the deployment use what setup made."""
    topics = [r.topic_arn or f"(the new topic in {r.region})" for r in results]
    rates = settings.region_rates
    return {
        "MAILER_SNS_TOPIC_ARNS": ",".join(dict.fromkeys(topics)),
        "MAILER_CONFIGURATION_SETS": ",".join(
            f"{cls}={name}" for cls, name in settings.configuration_sets.items()
        ),
        "MAILER_REGIONS": ",".join(f"{r}={rates[r]:g}" if r in rates else r for r in regions),
    }
