"""The messages table (campaign and transactional mail alike) and idempotency keys."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, created_at_column

# queued → claimed → sending → sent → delivered | bounced | complained,
# or failed, suppressed, cancelled.  "claimed": leased by a worker, no SES call made yet;
# "sending": an SES call may be under way, so a lapsed lease means "maybe sent".


class Message(Base):
    """One email: a (campaign, contact) pair, or one transactional send."""

    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # No foreign keys on the columns an audience fix-up writes: a million-row
    # INSERT … SELECT must not pay a trigger call per row. Campaigns are never deleted;
    # erasing a contact clears its messages' personal data in the same transaction.
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    email: Mapped[str] = mapped_column(Text, nullable=False)
    mail_class: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="queued")
    region: Mapped[str | None] = mapped_column(String(32))
    ses_message_id: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    # set when a lease lapsed while an SES call may have been under way
    maybe_sent: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    # transactional content (campaign mail takes it from the campaign)
    template_version_id: Mapped[int | None] = mapped_column(BigInteger)
    from_address: Mapped[str | None] = mapped_column(Text)
    reply_to: Mapped[str | None] = mapped_column(Text)
    subject: Mapped[str | None] = mapped_column(Text)
    html: Mapped[str | None] = mapped_column(Text)
    text_body: Mapped[str | None] = mapped_column("text", Text)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    tags: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    headers: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    # a test send of this campaign (POST /v1/campaigns/{id}/test): transactional lane,
    # the campaign's content, not counted in its stats
    test_campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at_column()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # queued again by POST /v1/campaigns/{id}/retry (once per message, ever)
    retried_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the A/B variant it is sent with (mailer.campaign.ab_tests); None: the campaign's content
    variant: Mapped[int | None] = mapped_column(SmallInteger)

    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_messages_campaign_status", "campaign_id", "status", "id"),
        Index(
            "ix_messages_ses_message_id",
            "ses_message_id",
            postgresql_where=text("ses_message_id IS NOT NULL"),
        ),
        Index(
            "ix_messages_lease_until",
            "lease_until",
            postgresql_where=text("status IN ('claimed', 'sending')"),
        ),
        Index(
            "ix_messages_transactional_queued",
            "next_attempt_at",
            postgresql_where=text("campaign_id IS NULL AND status = 'queued'"),
        ),
        Index(
            "ix_messages_campaign_variant",
            "campaign_id",
            "variant",
            postgresql_where=text("variant IS NOT NULL"),
        ),
        Index(
            "ix_messages_transactional_email",
            "email",
            "id",
            postgresql_where=text("campaign_id IS NULL"),
        ),
    )


class IdempotencyKey(Base):
    """Transactional sends: the same key and body give back the same message."""

    __tablename__ = "idempotency_keys"

    api_key_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    message_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("messages.id", ondelete="CASCADE"), nullable=False
    )
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (Index("ix_idempotency_keys_created_at", "created_at"),)
