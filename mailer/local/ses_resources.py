"""The SES account's resources as the emulator keeps them per region: identities, configuration
sets and their event destinations (apart from the operations on them, in ``ses_account``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Identity:
    name: str
    dkim_tokens: list[str] = field(default_factory=lambda: [secrets.token_hex(16) for _ in "123"])
    dkim_key_length: str = "RSA_1024_BIT"
    dkim_signing: bool = True
    mail_from: str | None = None
    mail_from_behavior: str = "USE_DEFAULT_VALUE"
    verified: bool = True  # False: as while SES waits for the DNS records

    def view(self) -> dict[str, Any]:
        kind = "EMAIL_ADDRESS" if "@" in self.name else "DOMAIN"
        status = "SUCCESS" if self.verified else "PENDING"
        dkim: dict[str, Any] = {
            "SigningEnabled": self.dkim_signing and kind == "DOMAIN",
            "Status": status if kind == "DOMAIN" else "NOT_STARTED",
            "Tokens": self.dkim_tokens if kind == "DOMAIN" else [],
            "SigningAttributesOrigin": "AWS_SES",
            "NextSigningKeyLength": self.dkim_key_length,
            "CurrentSigningKeyLength": self.dkim_key_length,
        }
        out: dict[str, Any] = {
            "IdentityType": kind,
            "FeedbackForwardingStatus": True,
            "VerifiedForSendingStatus": self.verified,
            "VerificationStatus": status,
            "DkimAttributes": dkim,
            "Policies": {},
            "Tags": [],
        }
        if self.mail_from:
            out["MailFromAttributes"] = {
                "MailFromDomain": self.mail_from,
                "MailFromDomainStatus": status,
                "BehaviorOnMxFailure": self.mail_from_behavior,
            }
        return out


@dataclass
class ConfigurationSet:
    name: str
    reputation_metrics: bool = False
    sending_enabled: bool = True
    tracking: dict[str, str] | None = None
    destinations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def view(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ConfigurationSetName": self.name,
            "ReputationOptions": {"ReputationMetricsEnabled": self.reputation_metrics},
            "SendingOptions": {"SendingEnabled": self.sending_enabled},
            "DeliveryOptions": {"TlsPolicy": "OPTIONAL"},
            "Tags": [],
        }
        if self.tracking:
            out["TrackingOptions"] = dict(self.tracking)
        return out


@dataclass
class Region:
    identities: dict[str, Identity] = field(default_factory=dict)
    sets: dict[str, ConfigurationSet] = field(default_factory=dict)


def event_destination(raw: dict[str, Any]) -> dict[str, Any]:
    """An event destination as kept: the known keys of a request's, ``Enabled`` a bool."""
    out = {
        "Enabled": bool(raw.get("Enabled", False)),
        "MatchingEventTypes": [str(t) for t in raw.get("MatchingEventTypes") or []],
    }
    for key in (
        "SnsDestination",
        "CloudWatchDestination",
        "KinesisFirehoseDestination",
        "EventBridgeDestination",
        "PinpointDestination",
    ):
        if raw.get(key):
            out[key] = raw[key]
    return out
