"""Outgoing webhooks: the endpoints product services register, and the outbox of events
written for them in the same transaction as the fact each event reports."""

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
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, created_at_column

# pending (waiting for its first or next attempt) → delivered | dead (attempts used up)
DELIVERY_STATUSES = ("pending", "delivered", "dead")


class WebhookEndpoint(Base):
    """A URL that hears the events it subscribes to, signed with its secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    url: Mapped[str] = mapped_column(Text, nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    # NULL: every event type; otherwise exact types or a family (``message.*``)
    event_types: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    # NULL: every mail class / campaign; events that carry none are not filtered by them
    mail_classes: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    campaign_ids: Mapped[list[int] | None] = mapped_column(ARRAY(BigInteger))
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    # why it was disabled by the deliverer (a long run of failures); NULL when by hand
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    # ``whsec_`` + base64: the key of the Standard Webhooks signature. During a rotation's
    # overlap the previous secret signs too (a second signature in the header).
    secret: Mapped[str] = mapped_column(Text, nullable=False)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the current run of failed attempts; the endpoint is held (no new attempts) until
    # ``hold_until`` so that a dead endpoint costs one probe per hold, not one per event
    consecutive_failures: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    failing_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    hold_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class WebhookDelivery(Base):
    """One event for one endpoint (the outbox row), with the state of its delivery."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False
    )
    # the Standard Webhooks ``webhook-id``: the same for every attempt (and a replay)
    webhook_id: Mapped[str] = mapped_column(
        Text,
        nullable=False,
        # as PostgreSQL prints it back (the migration check compares the text)
        server_default=text(
            "('msg_'::text || replace((gen_random_uuid())::text, '-'::text, ''::text))"
        ),
    )
    type: Mapped[str] = mapped_column(String(64), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    # the events of one message reach an endpoint in order: the ordering key
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    # held by a deliverer while its attempt is under way; a lapsed lease is taken again
    lease_token: Mapped[str | None] = mapped_column(String(36))
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_response: Mapped[str | None] = mapped_column(Text)  # the start of the answer's body
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()

    __table_args__ = (
        Index(
            "ix_webhook_deliveries_due",
            "endpoint_id",
            "next_attempt_at",
            "id",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
        Index(
            "ix_webhook_deliveries_message_pending",
            "endpoint_id",
            "message_id",
            "id",
            postgresql_where=text("status = 'pending' AND message_id IS NOT NULL"),
        ),
        # a queue: vacuumed by the count of its changes, not by its size (migration
        # whout3c4d5e6)
        {
            "postgresql_with": {
                "autovacuum_vacuum_scale_factor": 0,
                "autovacuum_vacuum_threshold": 5000,
                "autovacuum_vacuum_insert_scale_factor": 0,
                "autovacuum_vacuum_insert_threshold": 20000,
                "autovacuum_analyze_scale_factor": 0,
                "autovacuum_analyze_threshold": 20000,
            }
        },
    )
