"""Amazon SNS, as much of it as ``mailer ses setup`` and ``mailer ses check`` call, for the
local emulator: the Query API (form-encoded POST, XML answers) on the stand-in's port.

CreateTopic, ListTopics, GetTopicAttributes, SetTopicAttributes (``Policy`` and
``DisplayName``; a new topic has SNS's default policy for its owner), DeleteTopic,
Subscribe, ListSubscriptionsByTopic, GetSubscriptionAttributes, SetSubscriptionAttributes,
ConfirmSubscription and Unsubscribe. An http(s) subscription starts pending: as SNS does,
the emulator POSTs a signed ``SubscriptionConfirmation`` (the local certificate of
``mailer.local.simulator``) to the endpoint, whose ``SubscribeURL`` is an SNS URL; the
webhook verifies it and GETs that URL, which reaches this emulator when the API has
``AWS_ENDPOINT_URL_SNS`` pointing here (``mailer dev`` sets it), and the subscription is
confirmed. Subscribe again while pending sends the confirmation again, as SNS does.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, quote
from xml.sax.saxutils import escape

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from mailer.local.simulator import ACCOUNT, Signer
from mailer.local.standin_http import Answer, query_answer, query_error
from mailer.webhook.sns import SIGNED_KEYS

XMLNS = "http://sns.amazonaws.com/doc/2010-03-31/"


@dataclass
class Subscription:
    arn: str
    topic_arn: str
    protocol: str
    endpoint: str
    token: str
    pending: bool = True
    raw: bool = False
    authenticated: bool = False

    def attributes(self) -> dict[str, str]:
        return {
            "SubscriptionArn": self.arn,
            "TopicArn": self.topic_arn,
            "Protocol": self.protocol,
            "Endpoint": self.endpoint,
            "Owner": ACCOUNT,
            "PendingConfirmation": str(self.pending).lower(),
            "ConfirmationWasAuthenticated": str(self.authenticated).lower(),
            "RawMessageDelivery": str(self.raw).lower(),
        }


def _xml(action: str, inner: str = "") -> Answer:
    return query_answer(XMLNS, action, inner)


def _error(status: int, code: str, message: str) -> Answer:
    return query_error(XMLNS, status, code, message)


def _entries(attributes: dict[str, str]) -> str:
    return "".join(
        f"<entry><key>{escape(k)}</key><value>{escape(v)}</value></entry>"
        for k, v in attributes.items()
    )


def default_policy(topic_arn: str) -> dict[str, Any]:
    """The policy SNS gives a new topic: its owner account may use it."""
    return {
        "Version": "2008-10-17",
        "Id": "__default_policy_ID",
        "Statement": [
            {
                "Sid": "__default_statement_ID",
                "Effect": "Allow",
                "Principal": {"AWS": "*"},
                "Action": [
                    "SNS:GetTopicAttributes",
                    "SNS:SetTopicAttributes",
                    "SNS:AddPermission",
                    "SNS:RemovePermission",
                    "SNS:DeleteTopic",
                    "SNS:Subscribe",
                    "SNS:ListSubscriptionsByTopic",
                    "SNS:Publish",
                ],
                "Resource": topic_arn,
                "Condition": {"StringEquals": {"AWS:SourceOwner": ACCOUNT}},
            }
        ],
    }


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Sns:
    """Topics and subscriptions of every region (ARNs carry the region)."""

    def __init__(self, signer: Signer | None) -> None:
        self.signer = signer
        self._tasks: set[asyncio.Task[None]] = set()
        self.reset()

    def reset(self) -> None:
        self.topics: dict[str, list[str]] = {}  # topic ARN -> subscription ARNs
        self.topic_attributes: dict[str, dict[str, str]] = {}  # Policy, DisplayName
        self.subscriptions: dict[str, Subscription] = {}
        self.confirmations_sent = 0

    def handle(self, method: bytes, query: bytes, region: str, body: bytes) -> Answer:
        raw = query.decode() if method == b"GET" else body.decode(errors="replace")
        params = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
        action = params.get("Action", "")
        handler = getattr(self, f"op_{action}", None)
        if handler is None:
            return _error(400, "InvalidAction", f"The action {action} is not valid.")
        result: Answer = handler(region, params)
        return result

    def _subscriptions_of(self, topic_arn: str) -> list[Subscription]:
        return [self.subscriptions[a] for a in self.topics.get(topic_arn, [])]

    # -- topics ----------------------------------------------------------------------------

    def op_CreateTopic(self, region: str, p: dict[str, str]) -> Answer:  # noqa: N802
        name = p.get("Name", "")
        if not name or len(name) > 256:
            return _error(400, "InvalidParameter", "Invalid parameter: Topic Name")
        arn = f"arn:aws:sns:{region}:{ACCOUNT}:{name}"
        if arn not in self.topics:
            self.topics[arn] = []
            self.topic_attributes[arn] = {
                "Policy": json.dumps(default_policy(arn)),
                "DisplayName": "",
            }
        return _xml("CreateTopic", f"<TopicArn>{escape(arn)}</TopicArn>")

    def op_ListTopics(self, region: str, p: dict[str, str]) -> Answer:  # noqa: N802
        members = "".join(
            f"<member><TopicArn>{escape(arn)}</TopicArn></member>"
            for arn in self.topics
            if arn.split(":")[3] == region
        )
        return _xml("ListTopics", f"<Topics>{members}</Topics>")

    def op_GetTopicAttributes(self, region: str, p: dict[str, str]) -> Answer:  # noqa: N802
        arn = p.get("TopicArn", "")
        if arn not in self.topics:
            return _error(404, "NotFound", "Topic does not exist")
        subs = self._subscriptions_of(arn)
        attributes = {
            "TopicArn": arn,
            "Owner": ACCOUNT,
            **self.topic_attributes.get(arn, {}),
            "SubscriptionsConfirmed": str(sum(not s.pending for s in subs)),
            "SubscriptionsPending": str(sum(s.pending for s in subs)),
            "SubscriptionsDeleted": "0",
        }
        return _xml("GetTopicAttributes", f"<Attributes>{_entries(attributes)}</Attributes>")

    def op_SetTopicAttributes(self, region: str, p: dict[str, str]) -> Answer:  # noqa: N802
        arn, name = p.get("TopicArn", ""), p.get("AttributeName", "")
        if arn not in self.topics:
            return _error(404, "NotFound", "Topic does not exist")
        value = p.get("AttributeValue", "")
        if name == "Policy":
            try:
                document = json.loads(value)
            except ValueError:
                document = None
            if not isinstance(document, dict) or not isinstance(document.get("Statement"), list):
                return _error(400, "InvalidParameter", "Invalid parameter: Policy")
        elif name != "DisplayName":
            return _error(400, "InvalidParameter", "Invalid parameter: AttributeName")
        self.topic_attributes.setdefault(arn, {})[name] = value
        return _xml("SetTopicAttributes")

    def op_DeleteTopic(self, region: str, p: dict[str, str]) -> Answer:  # noqa: N802
        arn = p.get("TopicArn", "")
        self.topic_attributes.pop(arn, None)
        for sub in self.topics.pop(arn, []):
            self.subscriptions.pop(sub, None)
        return _xml("DeleteTopic")

    # -- subscriptions ---------------------------------------------------------------------

    def op_Subscribe(self, region: str, p: dict[str, str]) -> Answer:  # noqa: N802
        topic, protocol, endpoint = (
            p.get("TopicArn", ""),
            p.get("Protocol", ""),
            p.get("Endpoint", ""),
        )
        if topic not in self.topics:
            return _error(404, "NotFound", "Topic does not exist")
        if protocol not in ("http", "https") or not endpoint.startswith(f"{protocol}://"):
            return _error(400, "InvalidParameter", "Invalid parameter: Endpoint")
        existing = next(
            (
                s
                for s in self._subscriptions_of(topic)
                if (s.protocol, s.endpoint) == (protocol, endpoint)
            ),
            None,
        )
        if existing is None:
            existing = Subscription(
                arn=f"{topic}:{uuid.uuid4()}",
                topic_arn=topic,
                protocol=protocol,
                endpoint=endpoint,
                token=secrets.token_hex(64),
            )
            self.subscriptions[existing.arn] = existing
            self.topics[topic].append(existing.arn)
        if existing.pending:
            self._send_confirmation(existing, region)
        shown = existing.arn
        if existing.pending and p.get("ReturnSubscriptionArn", "false") != "true":
            shown = "pending confirmation"
        return _xml("Subscribe", f"<SubscriptionArn>{escape(shown)}</SubscriptionArn>")

    def op_ListSubscriptionsByTopic(self, region: str, p: dict[str, str]) -> Answer:  # noqa: N802
        topic = p.get("TopicArn", "")
        if topic not in self.topics:
            return _error(404, "NotFound", "Topic does not exist")
        members = "".join(
            "<member><SubscriptionArn>"
            f"{escape('PendingConfirmation' if s.pending else s.arn)}</SubscriptionArn>"
            f"<Owner>{ACCOUNT}</Owner><Protocol>{s.protocol}</Protocol>"
            f"<Endpoint>{escape(s.endpoint)}</Endpoint><TopicArn>{escape(topic)}</TopicArn>"
            "</member>"
            for s in self._subscriptions_of(topic)
        )
        return _xml("ListSubscriptionsByTopic", f"<Subscriptions>{members}</Subscriptions>")

    def op_GetSubscriptionAttributes(self, region: str, p: dict[str, str]) -> Answer:  # noqa: N802
        sub = self.subscriptions.get(p.get("SubscriptionArn", ""))
        if sub is None:
            return _error(404, "NotFound", "Subscription does not exist")
        return _xml(
            "GetSubscriptionAttributes", f"<Attributes>{_entries(sub.attributes())}</Attributes>"
        )

    def op_SetSubscriptionAttributes(self, region: str, p: dict[str, str]) -> Answer:  # noqa: N802
        sub = self.subscriptions.get(p.get("SubscriptionArn", ""))
        if sub is None:
            return _error(404, "NotFound", "Subscription does not exist")
        if p.get("AttributeName") != "RawMessageDelivery":
            return _error(400, "InvalidParameter", "Invalid parameter: AttributeName")
        sub.raw = p.get("AttributeValue", "false").lower() == "true"
        return _xml("SetSubscriptionAttributes")

    def op_ConfirmSubscription(self, region: str, p: dict[str, str]) -> Answer:  # noqa: N802
        topic, token = p.get("TopicArn", ""), p.get("Token", "")
        for sub in self._subscriptions_of(topic):
            if secrets.compare_digest(sub.token, token):
                sub.pending = False
                sub.authenticated = True
                return _xml(
                    "ConfirmSubscription", f"<SubscriptionArn>{escape(sub.arn)}</SubscriptionArn>"
                )
        return _error(400, "InvalidParameter", "Invalid token")

    def op_Unsubscribe(self, region: str, p: dict[str, str]) -> Answer:  # noqa: N802
        sub = self.subscriptions.pop(p.get("SubscriptionArn", ""), None)
        if sub is None:
            return _error(404, "NotFound", "Subscription does not exist")
        self.topics.get(sub.topic_arn, []).remove(sub.arn)
        return _xml("Unsubscribe")

    # -- the confirmation message ----------------------------------------------------------

    def confirmation(self, sub: Subscription, region: str) -> dict[str, Any]:
        """The signed ``SubscriptionConfirmation`` SNS posts to a new subscription."""
        assert self.signer is not None
        message: dict[str, Any] = {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": sub.token,
            "TopicArn": sub.topic_arn,
            "Message": f"You have chosen to subscribe to the topic {sub.topic_arn}.\n"
            "To confirm the subscription, visit the SubscribeURL included in this message.",
            "SubscribeURL": f"https://sns.{region}.amazonaws.com/?Action=ConfirmSubscription"
            f"&TopicArn={quote(sub.topic_arn, safe='')}&Token={sub.token}",
            "Timestamp": _stamp(),
            "SignatureVersion": "2",
            "SigningCertURL": self.signer.files.cert_url(region),
        }
        canonical = "".join(
            f"{k}\n{message[k]}\n" for k in SIGNED_KEYS["SubscriptionConfirmation"]
        ).encode()
        signature = self.signer.key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())
        message["Signature"] = base64.b64encode(signature).decode()
        return message

    def _send_confirmation(self, sub: Subscription, region: str) -> None:
        if self.signer is None:
            return  # no signing key (--sns-signing-dir): the subscription stays pending
        body = json.dumps(self.confirmation(sub, region)).encode()
        task = asyncio.get_running_loop().create_task(self._post(sub.endpoint, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, body: bytes, attempts: int = 3) -> None:
        import httpx

        headers = {
            "content-type": "text/plain; charset=UTF-8",
            "x-amz-sns-message-type": "SubscriptionConfirmation",
        }
        async with httpx.AsyncClient(timeout=10.0) as http:
            for attempt in range(attempts):
                try:
                    answer = await http.post(url, content=body, headers=headers)
                    if answer.status_code < 500:
                        self.confirmations_sent += 1
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5 * 2**attempt)

    def stats(self) -> dict[str, Any]:
        return {
            "topics": {
                arn: [self.subscriptions[s].attributes() for s in subs]
                for arn, subs in self.topics.items()
            },
            "topic_policies": {
                arn: json.loads(attributes["Policy"])
                for arn, attributes in self.topic_attributes.items()
                if attributes.get("Policy")
            },
            "confirmations_sent": self.confirmations_sent,
        }
