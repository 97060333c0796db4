from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mailer.types import BodyId


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    template_id: BodyId
    # a version number of the template; absent: its current version
    template_version: int | None = Field(default=None, ge=1)
    segment_id: BodyId
    # RFC 5322 mailboxes: an address or "Display Name <address>"
    from_address: str = Field(min_length=3, max_length=600)
    reply_to: str | None = Field(default=None, max_length=600)
    mail_class: str = Field(default="marketing", min_length=1, max_length=32)
    regions: list[str] | None = Field(default=None, max_length=20)
    send_at: datetime | None = None


class CampaignPatch(BaseModel):
    """A change to a draft campaign: what the body names changes, the rest stays."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    template_id: BodyId | None = None
    # a version number of the template; absent with a new template_id: its current version
    template_version: int | None = Field(default=None, ge=1)
    segment_id: BodyId | None = None
    from_address: str | None = Field(default=None, min_length=3, max_length=600)
    reply_to: str | None = Field(default=None, max_length=600)  # null removes it
    mail_class: str | None = Field(default=None, min_length=1, max_length=32)
    regions: list[str] | None = Field(default=None, max_length=20)
    send_at: datetime | None = None  # null: send at launch


class Stats(BaseModel):
    recipients: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0
    suppressed: int = 0
    delivered: int = 0
    bounced: int = 0
    complained: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    resent: int = 0


class CampaignOut(BaseModel):
    id: int
    name: str
    status: str
    paused_reason: str | None
    template_id: int
    template_version: int
    segment_id: int
    from_address: str
    reply_to: str | None
    mail_class: str
    regions: list[str]
    send_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    stats: Stats


class MessageOut(BaseModel):
    id: int
    email: str
    status: str
    error: str | None
    region: str | None
    ses_message_id: str | None
    attempts: int
    sent_at: datetime | None


class CampaignPage(BaseModel):
    items: list[CampaignOut]
    next_cursor: str | None


class MessagePage(BaseModel):
    items: list[MessageOut]
    next_cursor: str | None


class TestSendIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: list[str] = Field(min_length=1, max_length=10)
    data: dict[str, Any] = Field(default_factory=dict)
