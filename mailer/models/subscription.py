"""Topics, each contact's subscription to them, their history (the consent records),
signup forms and double opt-in confirmations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, created_at_column

TOPIC_STATUSES = ("subscribed", "unconfirmed", "unsubscribed")
# where a change of a contact's subscription to a topic came from
CHANGE_SOURCES = (
    "api",
    "import",
    "form",
    "confirmation_link",
    "unsubscribe_link",
    "preference_centre",
    "complaint",
)


class Topic(Base):
    """A stream of marketing mail a contact may join or leave on its own (a "list")."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    # shown in the preference centre to contacts who are not subscribed to it
    public: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="false")
    double_opt_in: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default="true")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class ContactTopic(Base):
    """A contact's subscription to one topic, as it is now (its history: TopicChange)."""

    __tablename__ = "contact_topics"

    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    topic_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    updated_at: Mapped[datetime] = created_at_column()

    # a topic campaign's audience: the topic's subscribers, read as one hash of contact ids
    __table_args__ = (Index("ix_contact_topics_topic", "topic_id", "status", "contact_id"),)


class TopicChange(Base):
    """One change of a subscription: the consent record (what was shown, when, from where).

    Written in the same statement or transaction as the change; deleted with the contact.
    ``ip`` and ``user_agent`` are cleared after ``consent_retention_days``."""

    __tablename__ = "topic_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False
    )
    topic_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("topics.id", ondelete="CASCADE"), nullable=False
    )
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    source: Mapped[str] = mapped_column(String(32), nullable=False)
    form_id: Mapped[int | None] = mapped_column(BigInteger)
    form_version: Mapped[int | None] = mapped_column(Integer)
    # the consent text the reader saw (the form's at that version)
    shown: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = created_at_column()

    __table_args__ = (Index("ix_topic_changes_contact", "contact_id", "id"),)


class Form(Base):
    """A signup form: the topics it offers, the fields it collects, what follows a submit."""

    __tablename__ = "forms"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    topic_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), nullable=False)
    # contact attributes the form asks for (text inputs), besides the address
    fields: Mapped[list[str]] = mapped_column(ARRAY(Text), nullable=False, server_default="{}")
    consent_text: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    redirect_url: Mapped[str | None] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    from_address: Mapped[str] = mapped_column(Text, nullable=False)
    # the double opt-in mail; None: the built-in one (mailer.subscription.mail)
    confirm_subject: Mapped[str | None] = mapped_column(Text)
    confirm_html: Mapped[str | None] = mapped_column(Text)
    # bumped on every change of what the form shows; consent records name it
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    created_at: Mapped[datetime] = created_at_column()
    updated_at: Mapped[datetime] = created_at_column()


class Confirmation(Base):
    """A double opt-in link sent: single use, expiring, for the topics that were asked for."""

    __tablename__ = "confirmations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False
    )
    form_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("forms.id", ondelete="CASCADE"), nullable=False
    )
    topic_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), nullable=False)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # "one confirmation per address and form per hour" reads the newest of the pair
    __table_args__ = (Index("ix_confirmations_contact_form", "contact_id", "form_id", "id"),)
