"""Stored SNS notifications and the SES events of messages."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, created_at_column


class SnsNotification(Base):
    """A verified SNS message, stored once per SNS MessageId and processed by a worker."""

    __tablename__ = "sns_notifications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sns_message_id: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    topic_arn: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    body: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    received_at: Mapped[datetime] = created_at_column()
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    error: Mapped[str | None] = mapped_column(Text)
    # not before then: it names an SES message id not recorded yet (its send's outcome may
    # still be on its way to the database), so it is looked at again a little later
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index(
            "ix_sns_notifications_unprocessed", "id", postgresql_where=text("processed_at IS NULL")
        ),
    )


class Event(Base):
    """Something that happened to a message: send, delivery, bounce, complaint, open, click…"""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="SET NULL")
    )
    campaign_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("campaigns.id", ondelete="SET NULL")
    )
    email: Mapped[str | None] = mapped_column(Text)
    mail_class: Mapped[str | None] = mapped_column(String(32))
    region: Mapped[str | None] = mapped_column(String(32))
    type: Mapped[str] = mapped_column(String(32), nullable=False)
    subtype: Mapped[str | None] = mapped_column(Text)
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    data: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    # the notification it came from (none for unsubscribes made on our own pages)
    sns_notification_id: Mapped[int | None] = mapped_column(BigInteger)
    # what makes the event itself unique (SES message, type, recipient, and the feedback id,
    # timestamp or link where one message can have several): replays and the same event
    # arriving in both SES formats add nothing
    dedup_key: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        UniqueConstraint("dedup_key"),
        Index("ix_events_message_id", "message_id"),
        Index("ix_events_email_type", "email", "type", "occurred_at"),
        Index("ix_events_type_occurred", "type", "occurred_at"),
    )
