"""Engagement: what readers (and machines) did with campaign mail, kept as rollups.

The raw Open and Click events stay in ``events`` (with the rule that flagged an event as
automated, if any, in its ``data``); these tables are what the reports read, so a report
over a million-recipient campaign sums a few thousand rows, never the events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base


def _count() -> Mapped[int]:
    return mapped_column(BigInteger, nullable=False, server_default="0")


class MessageEngagement(Base):
    """One message's opens and clicks, recomputed from its events whenever one arrives
    (``mailer.engagement.repository``): counts, firsts, and which of them look human."""

    __tablename__ = "message_engagement"

    message_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    opens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    clicks: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    human_opens: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    human_clicks: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    first_open_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_click_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_human_open_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_human_click_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # link → [clicks, human clicks]: the per-link rollup is kept by differences of this
    links: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")


class CampaignLink(Base):
    """Clicks on one link of a campaign: all of them, distinct messages, human messages."""

    __tablename__ = "campaign_links"

    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    link: Mapped[str] = mapped_column(Text, primary_key=True)
    tags: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    clicks: Mapped[int] = _count()
    clickers: Mapped[int] = _count()
    human_clickers: Mapped[int] = _count()


class CampaignTimeline(Base):
    """A campaign per 10 minutes: sends (recorded by the send path), deliveries, opens,
    clicks, bounces and complaints (the events that arrived, by when they happened)."""

    __tablename__ = "campaign_timeline"

    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    sent: Mapped[int] = _count()
    delivered: Mapped[int] = _count()
    opens: Mapped[int] = _count()
    clicks: Mapped[int] = _count()
    bounced: Mapped[int] = _count()
    complained: Mapped[int] = _count()


class CampaignDomain(Base):
    """Feedback of one campaign per recipient domain (grouped into providers on read)."""

    __tablename__ = "campaign_domains"

    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    domain: Mapped[str] = mapped_column(Text, primary_key=True)
    delivered: Mapped[int] = _count()
    bounced: Mapped[int] = _count()
    complained: Mapped[int] = _count()
    delayed: Mapped[int] = _count()
    opened: Mapped[int] = _count()


class DomainHour(Base):
    """Feedback of one mail class per recipient domain and hour (24 h / 7 d windows)."""

    __tablename__ = "domain_hours"

    hour: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    mail_class: Mapped[str] = mapped_column(String(32), primary_key=True)
    domain: Mapped[str] = mapped_column(Text, primary_key=True)
    delivered: Mapped[int] = _count()
    bounced: Mapped[int] = _count()
    complained: Mapped[int] = _count()
    delayed: Mapped[int] = _count()
    opened: Mapped[int] = _count()

    __table_args__ = (Index("ix_domain_hours_mail_class", "mail_class", "hour"),)


class DomainMx(Base):
    """A recipient domain's MX as last looked up (``engagement.mx``): the mailbox provider
    hosting its mail, or NULL when the host is none of the known ones (or the look-up
    failed: ``failed``, tried again sooner)."""

    __tablename__ = "domain_mx"

    domain: Mapped[str] = mapped_column(Text, primary_key=True)
    provider: Mapped[str | None] = mapped_column(Text)
    mx: Mapped[str | None] = mapped_column(Text)
    failed: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    looked_up_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
