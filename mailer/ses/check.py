"""``mailer ses check``: one fact per line, ✓ / ✗ / !, and for each that is not ✓ the fix.

Per region: credentials, production access, quota, sending, enforcement (GetAccount); each
domain identity verified, DKIM and MAIL FROM ``SUCCESS``; each configured configuration set
and its SNS destination covering bounce, complaint and delivery; each topic those publish
to allowed (``MAILER_SNS_TOPIC_ARNS``), its policy letting SES publish, and a confirmed
subscription to this deployment.
Then the deployment: https public URL, a secret key that is not a default, and the From
addresses of scheduled and sending campaigns on verified identities. Last, a DMARC record
for each of those domains (a warning with a record to publish: ``mailer.ses.dmarc``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mailer import secrets
from mailer.config import Settings
from mailer.contact.addresses import mailbox_address
from mailer.ses import dmarc, topic_policy
from mailer.ses.aws import AwsError, Clients
from mailer.ses.plan import REQUIRED_EVENT_TYPES, RULE_NAME
from mailer.ses.setup import WEBHOOK_PATH

OK, FAIL, WARN = "ok", "fail", "warn"
MARKS = {OK: "✓", FAIL: "✗", WARN: "!"}
SETUP = "mailer ses setup --domain {domain} --region {region}"


@dataclass
class Fact:
    status: str
    region: str | None
    subject: str
    detail: str
    fix: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "region": self.region,
            "subject": self.subject,
            "detail": self.detail,
            "fix": self.fix,
        }


class Checker:
    def __init__(self, aws: Clients, settings: Settings) -> None:
        self.aws = aws
        self.settings = settings
        self.facts: list[Fact] = []
        self.domains: set[str] = set()  # From domains seen: identities, campaign senders
        self.webhook_url = settings.public_url.rstrip("/") + WEBHOOK_PATH

    def add(
        self, status: str, region: str | None, subject: str, detail: str, fix: str | None = None
    ) -> None:
        self.facts.append(Fact(status, region, subject, detail, fix))

    # -- the account ---------------------------------------------------------------------

    async def account(self, region: str) -> bool:
        """GetAccount's facts; False when the credentials do not work (nothing else can)."""
        try:
            account = await self.aws.call("sesv2", region, "GetAccount")
        except AwsError as exc:
            self.add(
                FAIL,
                region,
                "credentials",
                f"{exc.code}: {exc.message}",
                "give this process AWS credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a "
                "profile or a role) allowed the calls of `mailer ses policy`",
            )
            return False
        self.add(OK, region, "credentials", "valid (SES GetAccount answered)")
        if account.get("ProductionAccessEnabled"):
            self.add(OK, region, "production access", "granted")
        else:
            self.add(
                WARN,
                region,
                "production access",
                "sandbox: mail only to verified addresses, 200 a day",
                "request production access: SES console → Account dashboard → Request production"
                " access, or `aws sesv2 put-account-details --production-access-enabled "
                f"--mail-type MARKETING --website-url … --region {region}`",
            )
        quota = account.get("SendQuota") or {}
        rate, most, sent = (
            float(quota.get(k, 0)) for k in ("MaxSendRate", "Max24HourSend", "SentLast24Hours")
        )
        line = f"{rate:g}/s, {most:g} per 24 h, {sent:g} sent in the last 24 h"
        if most > 0 and sent >= most:
            self.add(FAIL, region, "quota", line, "wait for the 24 h window or ask AWS for more")
        elif most > 0 and sent >= 0.8 * most:
            self.add(WARN, region, "quota", line, "ask AWS for a higher quota (Service Quotas)")
        else:
            self.add(OK, region, "quota", line)
        if account.get("SendingEnabled"):
            self.add(OK, region, "sending", "enabled")
        else:
            self.add(
                FAIL,
                region,
                "sending",
                "disabled for the account",
                f"`aws sesv2 put-account-sending-attributes --sending-enabled --region {region}`"
                " (after fixing why it was paused)",
            )
        status = str(account.get("EnforcementStatus") or "unknown")
        if status == "HEALTHY":
            self.add(OK, region, "enforcement", status)
        else:
            self.add(
                WARN if status == "PROBATION" else FAIL,
                region,
                "enforcement",
                status,
                "read the case in the SES console (Reputation metrics) and answer AWS",
            )
        return True

    # -- identities ----------------------------------------------------------------------

    async def identities(self, region: str, domains: list[str]) -> None:
        if not domains:
            listed = await self.aws.pages("sesv2", region, "ListEmailIdentities", "EmailIdentities")
            domains = [i["IdentityName"] for i in listed if i.get("IdentityType") == "DOMAIN"]
        if not domains:
            self.add(
                FAIL,
                region,
                "identity",
                "no domain identity",
                SETUP.format(domain="<your domain>", region=region),
            )
        self.domains.update(domains)
        for domain in domains:
            await self.identity(region, domain)

    async def identity(self, region: str, domain: str) -> None:
        setup = SETUP.format(domain=domain, region=region)
        found = await self.aws.find("sesv2", region, "GetEmailIdentity", EmailIdentity=domain)
        if found is None:
            self.add(FAIL, region, f"identity {domain}", "does not exist", setup)
            return
        if found.get("VerifiedForSendingStatus"):
            self.add(OK, region, f"identity {domain}", "verified")
        else:
            self.add(
                FAIL,
                region,
                f"identity {domain}",
                f"not verified ({found.get('VerificationStatus', 'unknown')})",
                f"publish the DKIM records `{setup}` prints; SES verifies within 72 h",
            )
        dkim = str((found.get("DkimAttributes") or {}).get("Status") or "NOT_STARTED")
        if dkim == "SUCCESS":
            self.add(OK, region, f"DKIM {domain}", dkim)
        else:
            self.add(
                FAIL, region, f"DKIM {domain}", dkim, f"publish the three CNAMEs `{setup}` prints"
            )
        mail_from = found.get("MailFromAttributes") or {}
        status = str(mail_from.get("MailFromDomainStatus") or "")
        if not mail_from.get("MailFromDomain"):
            self.add(FAIL, region, f"MAIL FROM {domain}", "not set", setup)
        elif status == "SUCCESS":
            self.add(OK, region, f"MAIL FROM {mail_from['MailFromDomain']}", status)
        else:
            self.add(
                FAIL,
                region,
                f"MAIL FROM {mail_from['MailFromDomain']}",
                status or "unknown",
                f"publish the MX and SPF records `{setup}` prints",
            )

    # -- configuration sets, topics, subscriptions ----------------------------------------

    async def configuration_sets(self, region: str) -> set[str]:
        """Each configured set's facts; the topics their SNS destinations publish to."""
        topics: set[str] = set()
        setup = SETUP.format(domain="<domain>", region=region)
        for mail_class, name in self.settings.configuration_sets.items():
            subject = f"configuration set {name} ({mail_class})"
            found = await self.aws.find(
                "sesv2", region, "GetConfigurationSet", ConfigurationSetName=name
            )
            if found is None:
                self.add(FAIL, region, subject, "does not exist", setup)
                continue
            answer = await self.aws.call(
                "sesv2", region, "GetConfigurationSetEventDestinations", ConfigurationSetName=name
            )
            covered: set[str] = set()
            for destination in answer.get("EventDestinations") or []:
                arn = (destination.get("SnsDestination") or {}).get("TopicArn")
                if destination.get("Enabled") and arn:
                    covered |= set(destination.get("MatchingEventTypes") or [])
                    topics.add(arn)
            missing = [t for t in REQUIRED_EVENT_TYPES if t not in covered]
            if missing:
                self.add(
                    FAIL,
                    region,
                    subject,
                    f"no SNS destination for {', '.join(m.lower() for m in missing)}",
                    setup,
                )
            else:
                self.add(
                    OK, region, subject, "exists, SNS destination for bounce, complaint, delivery"
                )
        return topics

    async def topics(self, region: str, topics: set[str]) -> None:
        for arn in sorted(topics):
            if arn in self.settings.sns_topic_arns:
                self.add(OK, region, f"topic {arn}", "in MAILER_SNS_TOPIC_ARNS")
            else:
                self.add(
                    FAIL,
                    region,
                    f"topic {arn}",
                    "not in MAILER_SNS_TOPIC_ARNS: its notifications are refused",
                    f"add {arn} to MAILER_SNS_TOPIC_ARNS and restart the API",
                )
            await self.topic_policy(region, arn)
            subs = await self.aws.pages(
                "sns", region, "ListSubscriptionsByTopic", "Subscriptions", TopicArn=arn
            )
            mine = [s for s in subs if s.get("Endpoint") == self.webhook_url]
            subject = f"subscription {self.webhook_url}"
            if any(s["SubscriptionArn"].startswith("arn:") for s in mine):
                self.add(OK, region, subject, "confirmed")
            elif mine:
                self.add(
                    FAIL,
                    region,
                    subject,
                    "pending confirmation",
                    "put the topic in MAILER_SNS_TOPIC_ARNS of the API, then run "
                    "`mailer ses setup` again (it asks SNS to confirm again)",
                )
            else:
                self.add(
                    FAIL, region, subject, "absent", SETUP.format(domain="<domain>", region=region)
                )

    async def topic_policy(self, region: str, arn: str) -> None:
        """The topic's policy lets SES publish (``mailer.ses.topic_policy``)."""
        found = await self.aws.find("sns", region, "GetTopicAttributes", TopicArn=arn)
        policy = topic_policy.parse(((found or {}).get("Attributes") or {}).get("Policy"))
        sets = list(dict.fromkeys(self.settings.configuration_sets.values()))
        if topic_policy.in_place(policy, topic_policy.statement(arn, sets, RULE_NAME)):
            self.add(OK, region, f"topic policy {arn}", "SES may publish (this account only)")
        else:
            self.add(
                WARN,
                region,
                f"topic policy {arn}",
                f"no statement {topic_policy.SID} letting ses.amazonaws.com publish",
                SETUP.format(domain="<domain>", region=region),
            )

    # -- the deployment ------------------------------------------------------------------

    def deployment(self, allow_http: bool) -> None:
        url = self.settings.public_url
        if url.startswith("https://"):
            self.add(OK, None, "MAILER_PUBLIC_URL", url)
        else:
            self.add(
                WARN if allow_http else FAIL,
                None,
                "MAILER_PUBLIC_URL",
                f"{url} is not https (SNS and unsubscribe links need https)",
                "set MAILER_PUBLIC_URL=https://<your API's public host>",
            )
        secret_problem = secrets.problem(self.settings)
        if secret_problem is not None:
            self.add(
                FAIL, None, "MAILER_SECRET_KEY", secret_problem, "make one with `mailer secret`"
            )
        else:
            self.add(OK, None, "MAILER_SECRET_KEY", "set, not a default")

    async def senders(self, regions: list[str], campaigns: list[tuple[str, list[str]]]) -> None:
        """Each From address of a scheduled or sending campaign on a verified identity of
        every region it sends through."""
        seen: dict[tuple[str, str], bool] = {}
        for mailbox, campaign_regions in campaigns:
            address = mailbox_address(mailbox)
            self.domains.add(address.rpartition("@")[2])
            for region in [r for r in (campaign_regions or regions) if r in regions]:
                key = (address, region)
                if key not in seen:
                    seen[key] = await self.verified(region, address)
        for (address, region), verified in seen.items():
            if verified:
                self.add(OK, region, f"From {address}", "on a verified identity")
            else:
                domain = address.rpartition("@")[2]
                self.add(
                    FAIL,
                    region,
                    f"From {address}",
                    "on no verified identity: its campaign would pause at the first send",
                    SETUP.format(domain=domain, region=region),
                )
        if not campaigns:
            self.add(OK, None, "campaign senders", "no scheduled or sending campaign")

    async def dmarc(self) -> None:
        """A warning for each From domain without a DMARC record, with one to publish."""
        for domain, fine, detail, fix in await dmarc.facts(self.settings, sorted(self.domains)):
            self.add(OK if fine else WARN, None, f"DMARC {domain}", detail, fix)

    async def verified(self, region: str, address: str) -> bool:
        """SES's rule: the address itself, its domain or a parent domain, verified."""
        domain = address.rpartition("@")[2]
        labels = domain.split(".")
        candidates = [address] + [".".join(labels[i:]) for i in range(len(labels) - 1)]
        for name in candidates:
            found = await self.aws.find("sesv2", region, "GetEmailIdentity", EmailIdentity=name)
            if found and found.get("VerifiedForSendingStatus"):
                return True
        return False


async def run_check(
    aws: Clients,
    settings: Settings,
    *,
    regions: list[str],
    domains: list[str],
    allow_http: bool,
    campaigns: Callable[[], Awaitable[list[tuple[str, list[str]]]]],
) -> list[Fact]:
    """Every fact, in order; ``campaigns`` reads (From address, regions) of the campaigns
    under way from the database."""
    checker = Checker(aws, settings)
    checker.domains.update(domains)
    reachable = []
    for region in regions:
        if not await checker.account(region):
            continue
        reachable.append(region)
        await checker.identities(region, domains)
        topics = await checker.configuration_sets(region)
        if not topics:
            checker.add(
                FAIL,
                region,
                "SNS topic",
                "no configuration set publishes to SNS: bounces never arrive",
                SETUP.format(domain="<domain>", region=region),
            )
        await checker.topics(region, topics)
    checker.deployment(allow_http)
    try:
        under_way = await campaigns()
    except Exception as exc:  # noqa: BLE001 - a fact of its own, not a crash
        checker.add(
            WARN,
            None,
            "campaign senders",
            f"campaigns not read: {exc!r}",
            "set MAILER_DATABASE_URL to the deployment's database",
        )
    else:
        await checker.senders(reachable, under_way)
    await checker.dmarc()
    return checker.facts
