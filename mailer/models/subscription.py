"""Topics, each contact's subscription to them, their history (the consent records),
signup forms and double opt-in confirmations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, created_at_column
from mailer.models.suppression import UNSUBSCRIBE_EVENT_CTE

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


# -- SQL fragments that other packages' statements compose (the topic rules, written once) --


def subscribed_to(topic_id: int) -> ColumnElement[bool]:
    """Contacts subscribed (and confirmed) to a topic: a topic campaign's audience is its
    segment and this. A semi-join PostgreSQL runs as one hash of the topic's subscribers."""
    from mailer.models.contact import Contact

    return (
        select(ContactTopic.contact_id)
        .where(
            ContactTopic.contact_id == Contact.id,
            ContactTopic.topic_id == topic_id,
            ContactTopic.status == "subscribed",
        )
        .exists()
    )


# THE place a subscription changes: the new status of each (contact, topic) and, in the
# same statement, its consent record, only for the pairs whose status did change (a repeat
# records nothing); each pair with its own consent (form, version, text shown, IP, user
# agent) under one ``source``. ``keep_subscribed``: an "unconfirmed" never downgrades a
# subscription (a confirmed subscriber who fills in the form again stays subscribed). The
# changes are returned: what an outgoing webhook (contact.subscribed /
# contact.unsubscribed) hooks to.
# ``wanted`` is a query of (contact_id, topic_id, status, form_id, form_version, shown, ip,
# ua), each pair at most once: the arrays of one call (SET_TOPICS_SQL), or a contact
# import's staged rows (set-based).
def set_topics_sql(wanted: str) -> str:
    return f"""
WITH wanted AS ({wanted}),
changed AS (
    INSERT INTO contact_topics AS ct (contact_id, topic_id, status)
    SELECT contact_id, topic_id, status FROM wanted
    ON CONFLICT (contact_id, topic_id) DO UPDATE
       SET status = excluded.status, updated_at = now()
     WHERE ct.status <> excluded.status
       AND NOT (:keep_subscribed AND ct.status = 'subscribed')
    RETURNING ct.contact_id, ct.topic_id, ct.status
)
INSERT INTO topic_changes (contact_id, topic_id, status, source, form_id, form_version,
                           shown, ip, user_agent)
SELECT c.contact_id, c.topic_id, c.status, :source, w.form_id, w.form_version, w.shown, w.ip,
       w.ua
  FROM changed c JOIN wanted w USING (contact_id, topic_id)
RETURNING contact_id, topic_id, status
"""  # noqa: S608 - constant fragments


SET_TOPICS_SQL = set_topics_sql(
    """
    SELECT * FROM unnest(CAST(:contacts AS bigint[]), CAST(:topics AS bigint[]),
                         CAST(:statuses AS text[]), CAST(:form_ids AS bigint[]),
                         CAST(:form_versions AS int[]), CAST(:shown AS text[]),
                         CAST(:ips AS text[]), CAST(:uas AS text[]))
           AS w(contact_id, topic_id, status, form_id, form_version, shown, ip, ua)
"""
)


@dataclass(frozen=True)
class Consent:
    """What a reader was shown and from where, recorded with every change it makes."""

    source: str
    form_id: int | None = None
    form_version: int | None = None
    shown: str | None = None
    ip: str | None = None
    user_agent: str | None = None


def set_topics_params(
    changes: list[tuple[int, int, str]],
    consent: Consent | list[Consent],
    *,
    keep_subscribed: bool = False,
) -> dict[str, Any]:
    """SET_TOPICS_SQL's parameters: (contact id, topic id, status) changes, each recorded
    with ``consent`` (one for all, or one per change under the same source)."""
    each = consent if isinstance(consent, list) else [consent] * len(changes)
    return {
        "contacts": [c for c, _, _ in changes],
        "topics": [t for _, t, _ in changes],
        "statuses": [s for _, _, s in changes],
        "keep_subscribed": keep_subscribed,
        "source": each[0].source,
        "form_ids": [c.form_id for c in each],
        "form_versions": [c.form_version for c in each],
        "shown": [c.shown for c in each],
        "ips": [c.ip for c in each],
        "uas": [c.user_agent for c in each],
    }


# A complaint leaves every topic (each a stream of marketing mail): the contacts of the
# addresses of ``inserted`` (the feedback loop's events), each change recorded.
UNSUBSCRIBE_TOPICS_CTE = """
, topics_left AS (
    UPDATE contact_topics ct SET status = 'unsubscribed', updated_at = now()
      FROM contacts c, (SELECT DISTINCT email FROM inserted WHERE email IS NOT NULL) i
     WHERE c.email = i.email AND ct.contact_id = c.id AND ct.status <> 'unsubscribed'
    RETURNING ct.contact_id, ct.topic_id
)
, topics_left_recorded AS (
    INSERT INTO topic_changes (contact_id, topic_id, status, source)
    SELECT contact_id, topic_id, 'unsubscribed', '{source}' FROM topics_left
)"""

# The unsubscribe link (page or RFC 8058 one-click) of a topic campaign's message leaves
# that topic only; as the plain unsubscribe, the event is stored once per message and only
# a newly stored one counts in the campaign's ``unsubscribed``. ``found`` is 0 for a
# message that is not of a topic campaign (the plain unsubscribe then applies).
UNSUBSCRIBE_TOPIC_SQL = f"""
WITH m AS (
    SELECT m.id, m.campaign_id, m.email, m.mail_class, m.region, c.topic_id
      FROM messages m JOIN campaigns c ON c.id = m.campaign_id
     WHERE m.id = :id AND c.topic_id IS NOT NULL
),
{UNSUBSCRIBE_EVENT_CTE.format(returning="campaign_id")},
left_topic AS (
    UPDATE contact_topics ct SET status = 'unsubscribed', updated_at = now()
      FROM m, contacts c
     WHERE c.email = m.email AND ct.contact_id = c.id AND ct.topic_id = m.topic_id
       AND ct.status <> 'unsubscribed'
    RETURNING ct.contact_id, ct.topic_id
),
recorded AS (
    INSERT INTO topic_changes (contact_id, topic_id, status, source)
    SELECT contact_id, topic_id, 'unsubscribed', 'unsubscribe_link' FROM left_topic
),
counted AS (
    UPDATE campaign_stats s SET unsubscribed = s.unsubscribed + 1
      FROM ev WHERE s.campaign_id = ev.campaign_id
)
SELECT (SELECT count(*) FROM m) AS found, (SELECT count(*) FROM ev) AS new
"""  # noqa: S608 - constant fragments
