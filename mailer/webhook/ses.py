"""SES notifications read into events, one per (event, recipient).

Both formats AWS documents are read: identity notifications (``notificationType``:
Bounce, Complaint, Delivery) and event publishing (``eventType``: Send, Reject, Bounce,
Complaint, Delivery, Open, Click, Rendering Failure, DeliveryDelay, Subscription). They
carry the same objects (``mail``, ``bounce``, ``complaint``, ``delivery``…), so one reader
serves both, and the same event arriving in both formats gets the same dedup key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailer.contact.addresses import normalise
from mailer.engagement.rules import engaged

# SES name → our event type
KINDS = {
    "Send": "send",
    "Reject": "reject",
    "Bounce": "bounce",
    "Complaint": "complaint",
    "Delivery": "delivery",
    "Open": "open",
    "Click": "click",
    "Rendering Failure": "rendering_failure",
    "DeliveryDelay": "delivery_delay",
    "Subscription": "subscription",
}
# notifications SES sends that are not about a message
IGNORED = {"AmazonSnsSubscriptionSucceeded"}


class NotAnEvent(ValueError):
    """A verified notification whose message is not an SES event we can read."""


@dataclass(frozen=True, slots=True)
class EventRow:
    type: str
    ses_message_id: str
    email: str | None
    subtype: str | None
    occurred_at: datetime
    dedup_key: str
    data: dict[str, Any]


def _time(value: object, fallback: datetime) -> datetime:
    if isinstance(value, str):
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return fallback
        return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)
    return fallback


def _addresses(items: object, key: str = "emailAddress") -> list[str]:
    out = []
    for item in items if isinstance(items, list) else []:
        value = item.get(key) if isinstance(item, dict) else item
        if isinstance(value, str) and value.strip():
            out.append(normalise(value))
    return list(dict.fromkeys(out))  # every recipient once, in order


def _pick(source: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: source[k] for k in keys if k in source}


def read(message: object, received: datetime) -> list[EventRow]:
    """The events of one SES notification (its ``Message``, parsed)."""
    if not isinstance(message, dict):
        raise NotAnEvent("the message is not a JSON object")
    name = message.get("eventType") or message.get("notificationType")
    if name in IGNORED:
        return []
    kind = KINDS.get(name) if isinstance(name, str) else None
    mail = message.get("mail")
    if kind is None or not isinstance(mail, dict) or not isinstance(mail.get("messageId"), str):
        raise NotAnEvent(f"not an SES event: {str(name)[:64]!r}")
    ses_id: str = mail["messageId"]
    destination = _addresses(mail.get("destination"), key="")
    sent_at = _time(mail.get("timestamp"), received)
    tags = mail.get("tags") if isinstance(mail.get("tags"), dict) else {}
    base = {"tags": tags} if tags else {}

    def rows(
        detail: dict[str, Any],
        recipients: list[str],
        subtype: str | None,
        unique: str,
        data: dict[str, Any],
    ) -> list[EventRow]:
        at = _time(detail.get("timestamp"), sent_at)
        return [
            EventRow(
                kind,
                ses_id,
                email,
                subtype,
                at,
                f"{kind}:{ses_id}:{email or ''}:{unique}",
                base | data,
            )
            for email in (recipients or [None])  # type: ignore[list-item]
        ]

    detail = message.get(_DETAIL[kind])
    detail = detail if isinstance(detail, dict) else {}
    if kind == "bounce":
        out = []
        for item in detail.get("bouncedRecipients") or []:
            if not isinstance(item, dict) or not isinstance(item.get("emailAddress"), str):
                continue
            out += rows(
                detail,
                [normalise(item["emailAddress"])],
                str(detail.get("bounceType") or "Undetermined"),
                str(detail.get("feedbackId") or ""),
                _pick(detail, "bounceSubType", "feedbackId", "reportingMTA")
                | _pick(item, "action", "status", "diagnosticCode"),
            )
        return out
    if kind == "complaint":
        return rows(
            detail,
            _addresses(detail.get("complainedRecipients")),
            detail.get("complaintFeedbackType"),
            "",
            _pick(detail, "feedbackId", "complaintSubType", "userAgent"),
        )
    if kind == "delivery":
        return rows(
            detail,
            _addresses(detail.get("recipients"), key="") or destination,
            None,
            "",
            _pick(detail, "smtpResponse", "processingTimeMillis", "reportingMTA"),
        )
    if kind == "delivery_delay":
        out = []
        for item in detail.get("delayedRecipients") or []:
            if isinstance(item, dict) and isinstance(item.get("emailAddress"), str):
                out += rows(
                    detail,
                    [normalise(item["emailAddress"])],
                    detail.get("delayType"),
                    str(detail.get("timestamp") or ""),
                    _pick(detail, "expirationTime") | _pick(item, "status", "diagnosticCode"),
                )
        return out
    if kind == "open":
        return rows(
            detail,
            destination[:1],
            None,
            str(detail.get("timestamp") or ""),
            engaged(
                _pick(detail, "ipAddress", "userAgent"),
                _time(detail.get("timestamp"), sent_at),
                sent_at,
            ),
        )
    if kind == "click":
        return rows(
            detail,
            destination[:1],
            None,
            f"{detail.get('timestamp') or ''}:{detail.get('link') or ''}",
            engaged(
                _pick(detail, "ipAddress", "userAgent", "link", "linkTags"),
                _time(detail.get("timestamp"), sent_at),
                sent_at,
            ),
        )
    if kind == "subscription":
        new = detail.get("newTopicPreferences")
        everything = isinstance(new, dict) and new.get("unsubscribeAll") is True
        return rows(
            detail,
            destination,
            "unsubscribe_all" if everything else "topics",
            str(detail.get("timestamp") or ""),
            _pick(detail, "contactList", "source", "newTopicPreferences", "oldTopicPreferences"),
        )
    if kind == "reject":
        return rows(detail, destination, None, "", _pick(detail, "reason"))
    if kind == "rendering_failure":
        return rows(detail, destination, None, "", _pick(detail, "errorMessage", "templateName"))
    return rows(detail, destination, None, "", {})  # send


_DETAIL = {
    "send": "send",
    "reject": "reject",
    "bounce": "bounce",
    "complaint": "complaint",
    "delivery": "delivery",
    "open": "open",
    "click": "click",
    "rendering_failure": "failure",
    "delivery_delay": "deliveryDelay",
    "subscription": "subscription",
}
