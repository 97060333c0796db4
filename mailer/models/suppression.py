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
