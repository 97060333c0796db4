"""The campaigns and campaign_stats tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, SmallInteger, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, created_at_column

CAMPAIGN_STATUSES = ("draft", "scheduled", "sending", "paused", "completed", "cancelled", "failed")

# the counters of GET /v1/campaigns/{id}.stats, kept in campaign_stats so that reading
# them stays cheap on million-recipient campaigns
STAT_NAMES = (
    "recipients",
    "queued",
    "sent",
    "failed",
    "suppressed",
    "delivered",
    "bounced",
    "complained",
    "opened",
    "clicked",
    "unsubscribed",
    "resent",
    "cancelled",
    # engagement (mailer.engagement): messages with an open / a click, and with a human one
    "unique_opened",
    "unique_clicked",
    "human_opened",
    "human_clicked",
    # failed messages queued again by POST /v1/campaigns/{id}/retry
    "retried",
)


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    template_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("templates.id"), nullable=False)
    template_version_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("template_versions.id"), nullable=False
    )
    segment_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("segments.id"), nullable=False)
    # a topic campaign goes to the segment's contacts subscribed to the topic, and its
    # unsubscribe link leaves that topic only; None: every subscribed contact of the segment
    topic_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("topics.id"))
    from_address: Mapped[str] = mapped_column(Text, nullable=False)
    reply_to: Mapped[str | None] = mapped_column(Text)
    mail_class: Mapped[str] = mapped_column(String(32), nullable=False, server_default="marketing")
    regions: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    send_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="draft")
    paused_reason: Mapped[str | None] = mapped_column(Text)
    # messages of this campaign have ids in [first_message_id, last_message_id]; work is
    # handed out as id ranges of this span
    first_message_id: Mapped[int | None] = mapped_column(BigInteger)
    last_message_id: Mapped[int | None] = mapped_column(BigInteger)
    audience_fixed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # SES "sending paused" answers to calls made before this do not pause it again
    resumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # UTM parameters added to the campaign's links at send ({source, medium, campaign})
    utm: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    # an A/B test (mailer.campaign.ab_tests): its settings, then its start and decision
    ab_test: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (Index("ix_campaigns_status", "status"),)


class CampaignStats(Base):
    """Cumulative counters of one campaign, bumped in the same statements that move messages."""

    __tablename__ = "campaign_stats"

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    recipients: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    queued: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    sent: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failed: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    suppressed: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    delivered: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    bounced: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    complained: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    opened: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    clicked: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    unsubscribed: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    resent: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    cancelled: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    unique_opened: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    unique_clicked: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    human_opened: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    human_clicked: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    retried: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")


class CampaignVariant(Base):
    """One variant of an A/B-tested campaign: what it changes (None: the campaign's own)."""

    __tablename__ = "campaign_variants"

    campaign_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    variant: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    subject: Mapped[str | None] = mapped_column(Text)
    template_version_id: Mapped[int | None] = mapped_column(BigInteger)
    from_address: Mapped[str | None] = mapped_column(Text)
