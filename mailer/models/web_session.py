"""Server-side sessions of the dashboard (and of people signing in)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from mailer.models.base import Base, created_at_column

SUBJECT_KINDS = ("api_key", "person")  # who a session belongs to


class WebSession(Base):
    """A signed-in browser session, kept on the server so that it can be ended: logout,
    revoking its subject (an API key) or its expiry. The cookie carries the row's id and a
    random token whose SHA-256 is ``token_hash``; the token itself is never stored."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    subject_kind: Mapped[str] = mapped_column(Text, nullable=False)
    subject_id: Mapped[int] = mapped_column(BigInteger, nullable=False)
    created_at: Mapped[datetime] = created_at_column()
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        # ending every live session of a subject (a key revoked)
        Index(
            "ix_web_sessions_subject",
            "subject_kind",
            "subject_id",
            postgresql_where=text("ended_at IS NULL"),
        ),
    )
