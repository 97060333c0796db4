"""Campaign request and response bodies, with the counters' documentation."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mailer.types import BodyId, Version


class VariantIn(BaseModel):
    """One variant of an A/B test: what differs from the campaign (nothing: the control)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    subject: str | None = Field(default=None, min_length=1, max_length=998)
    # a version number of the campaign's template
    template_version: Version | None = None
    # the sender's display name (the address stays the campaign's)
    from_name: str | None = Field(default=None, min_length=1, max_length=200)


AbMetric = Literal["human_opens", "human_clicks", "clicks_per_delivered"]


class AbTestIn(BaseModel):
    """How the variants are tested (docs/engagement.md, "A/B tests")."""

    model_config = ConfigDict(extra="forbid", strict=True)

    test_share: float = Field(
        default=0.2, gt=0, lt=1, description="share of the recipients in the test, split evenly"
    )
    metric: AbMetric = "human_opens"
    wait_minutes: float = Field(default=240, ge=0, le=10080)
    auto: bool = Field(
        default=True,
        description="send the winner to the rest after the wait; false: wait for"
        " POST /v1/campaigns/{id}/winner",
    )
    min_per_variant: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="fewer delivered messages than this in any variant: too small a sample,"
        " variant 1 is sent",
    )


class Utm(BaseModel):
    """UTM parameters added to the campaign's links (never to the unsubscribe link)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    source: str | None = Field(default=None, min_length=1, max_length=100)
    medium: str | None = Field(default=None, min_length=1, max_length=100)
    campaign: str | None = Field(default=None, min_length=1, max_length=200)


class CampaignIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "March news",
                    "template_id": 1,
                    "segment_id": 1,
                    "from_address": "Acme News <news@acme.example>",
                    "send_at": "2030-03-01T09:00:00Z",
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    template_id: BodyId
    # a version number of the template; absent: its current version
    template_version: Version | None = None
    segment_id: BodyId
    # a topic: the audience is the segment's contacts subscribed to it, and the unsubscribe
    # link leaves that topic only; absent: every subscribed contact of the segment
    topic_id: BodyId | None = None
    # RFC 5322 mailboxes: an address or "Display Name <address>"
    from_address: str = Field(min_length=3, max_length=600)
    reply_to: str | None = Field(default=None, max_length=600)
    mail_class: str = Field(default="marketing", min_length=1, max_length=32)
    regions: list[str] | None = Field(default=None, max_length=20)
    send_at: datetime | None = None
    utm: Utm | None = None
    # an A/B test: 2 to 5 variants, tested on a share of the recipients
    variants: list[VariantIn] | None = Field(default=None, min_length=2, max_length=5)
    ab_test: AbTestIn | None = None


class CampaignPatch(BaseModel):
    """A change to a draft campaign: what the body names changes, the rest stays."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    template_id: BodyId | None = None
    # a version number of the template; absent with a new template_id: its current version
    template_version: Version | None = None
    segment_id: BodyId | None = None
    topic_id: BodyId | None = None  # null: no topic
    from_address: str | None = Field(default=None, min_length=3, max_length=600)
    reply_to: str | None = Field(default=None, max_length=600)  # null removes it
    mail_class: str | None = Field(default=None, min_length=1, max_length=32)
    regions: list[str] | None = Field(default=None, max_length=20)
    send_at: datetime | None = None  # null: send at launch
    utm: Utm | None = None  # null removes it


def _stat(description: str) -> Any:
    return Field(default=0, description=description)


class Stats(BaseModel):
    """A campaign's counters (cumulative: a message counted once stays counted).

    ``recipients = queued + in flight + sent + failed + suppressed at send + cancelled``;
    ``progress = (recipients - queued) / recipients``, never over 1.
    """

    recipients: int = _stat("messages created at launch: the segment's eligible contacts")
    queued: int = _stat("messages not finished yet (waiting, or being sent)")
    sent: int = _stat("messages SES accepted, whatever happened to them later")
    failed: int = _stat("messages that failed for good (rejected, invalid, render error)")
    suppressed: int = _stat(
        "segment contacts left out at launch because suppressed, plus recipients found"
        " suppressed at send time (neither is sent)"
    )
    delivered: int = _stat("messages with an SES Delivery event")
    bounced: int = _stat("messages with an SES Bounce event (hard or soft)")
    complained: int = _stat("messages with an SES Complaint event")
    opened: int = _stat("messages with at least one SES Open event")
    clicked: int = _stat("messages with at least one SES Click event")
    unsubscribed: int = _stat("recipients who unsubscribed through this campaign's link")
    resent: int = _stat(
        "messages sent again after a worker died between SES accepting them and the"
        " outcome being recorded"
    )
    cancelled: int = _stat("messages cancelled before they were sent (cancel)")
    unique_opened: int = _stat("messages with at least one Open event (any, human or not)")
    unique_clicked: int = _stat("messages with at least one Click event (any, human or not)")
    human_opened: int = _stat(
        "messages with an open or a click that no automation rule flagged (Apple Mail"
        " Privacy Protection, no human user agent, seconds after sending, link scanner):"
        " see docs/engagement.md"
    )
    human_clicked: int = _stat("messages with a click that no automation rule flagged")
    retried: int = _stat("failed messages queued again by POST /v1/campaigns/{id}/retry")
    unique_open_rate: float = _stat("unique_opened / delivered (0 when nothing delivered)")
    unique_click_rate: float = _stat("unique_clicked / delivered")
    human_open_rate: float = _stat("human_opened / delivered")
    human_click_rate: float = _stat("human_clicked / delivered")
    progress: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="share of the recipients that are finished: (recipients - queued) / recipients",
    )


class VariantOut(BaseModel):
    variant: int
    subject: str | None
    template_version: int | None
    from_address: str | None
    recipients: int = 0
    sent: int = 0
    delivered: int = 0
    unique_opened: int = 0
    human_opened: int = 0
    human_clicked: int = 0
    clicks: int = 0
    human_open_rate: float = 0.0
    human_click_rate: float = 0.0
    clicks_per_delivered: float = 0.0


class AbTestOut(AbTestIn):
    model_config = ConfigDict(extra="forbid", strict=False)  # read back from stored JSON

    started_at: datetime | None = None
    decide_at: datetime | None = None
    winner: int | None = None
    decided_at: datetime | None = None
    decision: str | None = Field(
        default=None,
        description="metric, tie (the lowest-numbered best variant), too_small_sample"
        " (variant 1), or picked (by the user)",
    )
    variants: list[VariantOut] = Field(default_factory=list)


class CampaignOut(BaseModel):
    id: int
    name: str
    status: str
    paused_reason: str | None
    template_id: int
    template_version: int
    segment_id: int
    topic_id: int | None = None
    from_address: str
    reply_to: str | None
    mail_class: str
    regions: list[str]
    send_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    utm: Utm | None = None
    ab_test: AbTestOut | None = None
    stats: Stats


class MessageOut(BaseModel):
    id: int
    email: str
    status: str
    error: str | None
    region: str | None
    ses_message_id: str | None
    attempts: int
    sent_at: datetime | None


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    next_cursor: str | None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class TestSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: list[str] = Field(min_length=1, max_length=10)
    data: dict[str, Any] = Field(default_factory=dict)
