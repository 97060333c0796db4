"""``mailer ses policy``: least-privilege IAM policies, scoped to the named resources.

Running (API and workers): ``ses:SendEmail`` on the sending identities and the
configuration sets (SES authorises a send against both), ``ses:GetEmailIdentity`` on the
identities (the API's DKIM check of a From domain at create), ``ses:GetConfigurationSet``
on the sets (the worker's start-up check), ``ses:GetAccount`` and
``ses:ListEmailIdentities`` (the console's sender choices), which have no resource.
Setup: what ``mailer ses setup`` and ``mailer ses check`` call, on the same identities,
sets and topics (``sns:SetTopicAttributes``: the topic policy that lets SES publish); the
list operations have no resource either.
"""

from __future__ import annotations

from typing import Any

from mailer.ses.plan import DEFAULT_TOPIC_NAME

SETUP_SES_IDENTITY = [
    "ses:CreateEmailIdentity",
    "ses:GetEmailIdentity",
    "ses:PutEmailIdentityDkimSigningAttributes",
    "ses:PutEmailIdentityMailFromAttributes",
]
SETUP_SES_SET = [
    "ses:CreateConfigurationSet",
    "ses:GetConfigurationSet",
    "ses:PutConfigurationSetReputationOptions",
    "ses:PutConfigurationSetSendingOptions",
    "ses:PutConfigurationSetTrackingOptions",
    "ses:GetConfigurationSetEventDestinations",
    "ses:CreateConfigurationSetEventDestination",
    "ses:UpdateConfigurationSetEventDestination",
]
SETUP_SNS_TOPIC = [
    "sns:CreateTopic",
    "sns:GetTopicAttributes",
    "sns:SetTopicAttributes",
    "sns:Subscribe",
    "sns:ListSubscriptionsByTopic",
]
SETUP_SNS_SUBSCRIPTION = ["sns:GetSubscriptionAttributes", "sns:SetSubscriptionAttributes"]
UNSCOPED_READS = ["ses:GetAccount", "ses:ListEmailIdentities", "sns:ListTopics"]


def _arns(kind: str, regions: list[str], account: str, names: list[str]) -> list[str]:
    return [f"arn:aws:ses:{r}:{account}:{kind}/{n}" for r in regions for n in names]


def policies(
    *,
    domains: list[str],
    regions: list[str],
    configuration_sets: list[str],
    account: str = "*",
    topic_name: str = DEFAULT_TOPIC_NAME,
) -> dict[str, dict[str, Any]]:
    """``{"running": policy, "setup": policy}``, IAM policy documents."""
    identities = _arns("identity", regions, account, domains)
    sets = _arns("configuration-set", regions, account, list(dict.fromkeys(configuration_sets)))
    topics = [f"arn:aws:sns:{r}:{account}:{topic_name}" for r in regions]
    running = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SendFromTheIdentitiesThroughTheConfigurationSets",
                "Effect": "Allow",
                "Action": ["ses:SendEmail"],
                "Resource": identities + sets,
            },
            {
                # the API's alignment check (mailer.ses.senders): DKIM of the From domains
                "Sid": "CheckTheSendingIdentities",
                "Effect": "Allow",
                "Action": ["ses:GetEmailIdentity"],
                "Resource": identities,
            },
            {
                "Sid": "CheckTheConfigurationSets",
                "Effect": "Allow",
                "Action": ["ses:GetConfigurationSet"],
                "Resource": sets,
            },
            {
                "Sid": "ReadTheAccountQuota",
                "Effect": "Allow",
                "Action": ["ses:GetAccount"],
                "Resource": "*",
            },
            {
                # the console's campaign wizard offers them as senders
                "Sid": "ListTheVerifiedIdentities",
                "Effect": "Allow",
                "Action": ["ses:ListEmailIdentities"],
                "Resource": "*",
            },
        ],
    }
    setup = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DomainIdentityDkimMailFrom",
                "Effect": "Allow",
                "Action": SETUP_SES_IDENTITY,
                "Resource": identities,
            },
            {
                "Sid": "ConfigurationSetsAndEventDestinations",
                "Effect": "Allow",
                "Action": SETUP_SES_SET,
                "Resource": sets,
            },
            {
                "Sid": "FeedbackTopicAndSubscription",
                "Effect": "Allow",
                "Action": SETUP_SNS_TOPIC,
                "Resource": topics,
            },
            {
                "Sid": "FeedbackSubscriptionAttributes",
                "Effect": "Allow",
                "Action": SETUP_SNS_SUBSCRIPTION,
                "Resource": [f"{t}:*" for t in topics],
            },
            {
                "Sid": "ReadsWithoutAResource",
                "Effect": "Allow",
                "Action": UNSCOPED_READS,
                "Resource": "*",
            },
        ],
    }
    return {"running": running, "setup": setup}
