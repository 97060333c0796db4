"""The suppressions table, the rule of which scopes stop which mail, and its SQL fragments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, created_at_column


def scopes_for(mail_class: str) -> list[str]:
    """The suppression scopes that stop mail of ``mail_class`` (the one rule, used by the
    audience fix-up, segment counts and the send path): ``all`` stops every class,
    ``marketing`` stops marketing mail only."""
    return ["all", "marketing"] if mail_class == "marketing" else ["all"]


class Suppression(Base):
    """An address not to be mailed: scope ``all`` or only ``marketing``."""

    __tablename__ = "suppressions"

    email: Mapped[str] = mapped_column(Text, primary_key=True)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    scope: Mapped[str] = mapped_column(String(16), nullable=False, server_default="all")
    source: Mapped[str] = mapped_column(String(32), nullable=False, server_default="manual")
    created_at: Mapped[datetime] = created_at_column()


# -- SQL fragments that other statements compose (the suppression rules, written once) -----


def scopes_of(email: str) -> str:
    """SQL: the suppression scopes an address is under (an empty array: none)."""
    return f"ARRAY(SELECT s.scope FROM suppressions s WHERE s.email = {email})"  # noqa: S608


def why_suppressed(email: str) -> str:
    """SQL: why an address is suppressed, as a message's error says it (NULL: it is not)."""
    reason = "'suppressed: ' || s.reason || ' (scope ' || s.scope || ', since ' || to_char(s.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ')'"  # noqa: E501
    return f"(SELECT {reason} FROM suppressions s WHERE s.email = {email})"  # noqa: S608


def is_suppressed(email: str) -> str:
    """SQL: whether an address is on the suppression list at all."""
    return f"EXISTS (SELECT 1 FROM suppressions WHERE email = {email})"  # noqa: S608


# a notification only ever widens a suppression: marketing → all, never all → marketing.
# CTEs named ``suppressed`` for the feedback loop's statements: ``hard`` holds the
# addresses to suppress for all mail, with their reasons
SUPPRESS_ALL_CTE = """
, suppressed AS (
    INSERT INTO suppressions (email, reason, scope, source)
    SELECT email, min(reason), 'all', 'bounce' FROM hard GROUP BY email
    ON CONFLICT (email) DO UPDATE
       SET scope = 'all', reason = excluded.reason, source = excluded.source
     WHERE suppressions.scope <> 'all'
)"""

# the addresses of ``inserted`` (``where`` narrows them) suppressed for marketing mail
SUPPRESS_MARKETING_CTE = """
, suppressed AS (
    INSERT INTO suppressions (email, reason, scope, source)
    SELECT DISTINCT email, '{reason}', 'marketing', '{source}' FROM inserted
     WHERE email IS NOT NULL {where}
    ON CONFLICT (email) DO NOTHING
)"""

# the unsubscribe of message ``m`` stored once as its event (the dedup key), returning
# ``{returning}`` of a newly stored one: a repeated unsubscribe counts nothing again
UNSUBSCRIBE_EVENT_CTE = """
ev AS (
    INSERT INTO events (message_id, campaign_id, email, mail_class, region, type,
                        subtype, occurred_at, data, dedup_key)
    SELECT id, campaign_id, email, mail_class, region, 'unsubscribe', :how, now(),
           CAST(:data AS jsonb), 'unsubscribe:' || id
      FROM m
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING {returning}
)"""
