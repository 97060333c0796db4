from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, created_at_column

CONTACT_STATUSES = ("subscribed", "unsubscribed")


class Contact(Base):
    """A recipient. ``email`` is stored normalised (trimmed, lower-cased)."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    email: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, server_default="{}")
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="subscribed")
    unsubscribed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    # no index on attributes: a jsonb GIN index made bulk imports a third slower and
    # segment filters mostly read attributes ->> key, which it does not serve
    __table_args__ = (Index("ix_contacts_tags", "tags", postgresql_using="gin"),)


class ContactImport(Base):
    """A CSV import: pending → running → completed | failed."""

    __tablename__ = "contact_imports"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, server_default="pending")
    total_rows: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    created: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    updated: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    rejected: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    errors: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, nullable=False, server_default="[]"
    )
    # the uploaded CSV, kept until the import has run
    source: Mapped[bytes | None] = mapped_column()
    failure: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
