"""Reputation rollups per minute, auto-pauses and the polled SES accounts."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, created_at_column


class ReputationMinute(Base):
    """Per-minute counters of one (mail class, region, configuration set, campaign).

    Kept up to date by the statements that record sends and apply events (one upsert per
    batch), so reputation reads sum a few thousand rows, never the messages. Mailbox
    simulator traffic is left out. ``region`` is '' when unknown; ``campaign_id`` 0 for
    mail outside campaigns (transactional).
    """

    __tablename__ = "reputation_minutes"

    minute: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    mail_class: Mapped[str] = mapped_column(String(32), primary_key=True)
    region: Mapped[str] = mapped_column(String(32), primary_key=True)
    configuration_set: Mapped[str] = mapped_column(Text, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sent: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    delivered: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    hard_bounces: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    soft_bounces: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    complaints: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")

    __table_args__ = (
        Index("ix_reputation_minutes_campaign_id", "campaign_id", "minute"),
        Index("ix_reputation_minutes_mail_class", "mail_class", "minute"),
    )


class RegionAccount(Base):
    """The SES account of one region as GetAccount last answered."""

    __tablename__ = "region_accounts"

    region: Mapped[str] = mapped_column(String(32), primary_key=True)
    max_send_rate: Mapped[float | None] = mapped_column(Float)
    max_24h_send: Mapped[float | None] = mapped_column(Float)
    sent_last_24h: Mapped[float | None] = mapped_column(Float)
    sending_enabled: Mapped[bool | None] = mapped_column(Boolean)
    enforcement_status: Mapped[str | None] = mapped_column(Text)
    production_access: Mapped[bool | None] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime] = created_at_column()


class AutoPause(Base):
    """A campaign or a whole mail class paused by its numbers; ``resumed_at`` re-arms it."""

    __tablename__ = "auto_pauses"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    scope: Mapped[str] = mapped_column(String(16), nullable=False)  # campaign | mail_class
    mail_class: Mapped[str] = mapped_column(String(32), nullable=False)
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    campaigns: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    resumed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # a campaign's totals when it was resumed: its check counts only what came after
    base_sent: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    base_hard_bounces: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    base_complaints: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")

    __table_args__ = (Index("ix_auto_pauses_mail_class", "mail_class", "created_at"),)
