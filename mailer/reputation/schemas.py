"""The reputation report's bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from mailer.engagement.schemas import ProviderOut

Status = Literal["ok", "warning", "paused"]


class Window(BaseModel):
    """Counts over one window; the bounce rate counts hard (permanent) bounces, as SES."""

    sent: int
    delivered: int
    bounced: int
    hard_bounces: int
    soft_bounces: int
    complained: int
    bounce_rate: float
    complaint_rate: float


class ClassRegionReputation(BaseModel):
    mail_class: str
    region: str | None
    status: Status
    last_1h: Window
    last_24h: Window
    last_7d: Window


class CampaignReputation(ClassRegionReputation):
    id: int
    name: str
    campaign_status: str
    paused_reason: str | None
    sent: int  # since it started
    hard_bounces: int
    complained: int
    region: str | None = None


class RegionQuota(BaseModel):
    region: str
    send_rate_limit: float
    rate_overridden: bool
    max_send_rate: float | None
    max_24h_send: float | None
    sent_last_24h: float | None  # SES's own figure (GetAccount)
    sent_24h_recorded: int  # sends recorded here, simulator traffic left out
    sending_enabled: bool | None
    enforcement_status: str | None
    production_access: bool | None
    checked_at: datetime | None
    error: str | None


class ReputationOut(BaseModel):
    thresholds: dict[str, float]
    mail_classes: list[ClassRegionReputation]
    campaigns: list[CampaignReputation]
    regions: list[RegionQuota]
    providers: dict[str, dict[str, list[ProviderOut]]] = Field(
        default_factory=dict,
        description="per mail class, over 24h and 7d: the busiest mailbox providers"
        " (recipient domains grouped; docs/engagement.md)",
    )
