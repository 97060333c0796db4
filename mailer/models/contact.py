"""The contacts, their status changes, imports and erasure records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, Index, String, Text, func
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, created_at_column

# unconfirmed: arrived by a double opt-in form and not confirmed yet (no marketing mail)
CONTACT_STATUSES = ("subscribed", "unsubscribed", "unconfirmed")


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
    # segment filters mostly read attributes ->> key, which it does not serve. No index on
    # the email domain either: reverse(email) text_pattern_ops made the import's upsert a
    # third slower too; "email ends with @domain" counts are a sequential scan.
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
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, server_default="[]")
    # the CSV columns that become attributes, in the order of the staged attribute_values
    attribute_keys: Mapped[list[str]] = mapped_column(
        ARRAY(Text), nullable=False, server_default="{}"
    )
    # the file has a topics or topics_unsubscribed column (its chunks then set topics)
    with_topics: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    # staged rows up to this row number have been merged into contacts
    merged_through: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    failure: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at_column()
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class ContactImportRow(Base):
    """A good row of an upload, staged (COPY) while the file streams in; merged by the job.

    UNLOGGED: staging needs no WAL; a server crash empties it and the import then fails
    instead of completing short.
    """

    __tablename__ = "contact_import_rows"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    import_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    row: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # line of the file
    email: Mapped[str] = mapped_column(Text, nullable=False)
    # plain text, not text[]: COPY of arrays is several times slower. The values are
    # joined by U+001F (a row holding that control character is rejected), an empty one
    # meaning "leave the attribute alone"; tags are joined by ";" (they are split on it).
    attribute_values: Mapped[str] = mapped_column(Text, nullable=False)
    tags: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str | None] = mapped_column(String(16))  # from a "status" column
    # topic id (as text) -> "subscribed" / "unsubscribed", from the topics columns
    topics: Mapped[dict[str, str] | None] = mapped_column(JSONB)
    # set by the job for a repeated address: the row of its first occurrence
    duplicate_of: Mapped[int | None] = mapped_column(BigInteger)


STATUS_SOURCES = ("api", "import", "unsubscribe_link", "complaint", "form", "confirmation_link")


class ContactStatusChange(Base):
    """subscribed ↔ unsubscribed, with where it came from and when (consent records)."""

    __tablename__ = "contact_status_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    changed_at: Mapped[datetime] = created_at_column()

    __table_args__ = (Index("ix_contact_status_changes_contact", "contact_id", "id"),)


class ContactErasure(Base):
    """An erased contact (right to be forgotten), recorded without its address."""

    __tablename__ = "contact_erasures"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # HMAC-SHA256 of the normalised address under the secret key: proves an erasure of a
    # given address to whoever holds both, reveals nothing to anyone else
    address_hmac: Mapped[str] = mapped_column(String(64), nullable=False)
    messages: Mapped[int] = mapped_column(BigInteger, nullable=False)
    events: Mapped[int] = mapped_column(BigInteger, nullable=False)
    suppressed: Mapped[bool] = mapped_column(nullable=False)
    erased_at: Mapped[datetime] = created_at_column()

    # "was this address erased?" looks up its HMAC under every verifying key
    __table_args__ = (Index("ix_contact_erasures_address_hmac", "address_hmac"),)
