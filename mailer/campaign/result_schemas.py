"""The bodies of a campaign's results: links, providers, timeline, retry, A/B winner."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mailer.campaign.schemas import CampaignOut
from mailer.engagement.schemas import ProviderOut


class LinkOut(BaseModel):
    link: str
    tags: dict[str, Any] = Field(description="the SES linkTags of the link's latest click")
    clicks: int = Field(description="Click events on the link")
    clickers: int = Field(description="messages with a click on the link")
    human_clickers: int = Field(description="messages with a human click on the link")


class LinkPage(BaseModel):
    items: list[LinkOut]
    next_cursor: str | None


class ProviderPage(BaseModel):
    items: list[ProviderOut]
    next_cursor: str | None


class TimelineBucket(BaseModel):
    start: datetime = Field(description="start of the 10-minute bucket (UTC)")
    sent: int
    delivered: int
    opens: int
    clicks: int
    bounced: int
    complained: int


class TimelinePage(BaseModel):
    items: list[TimelineBucket]
    next_cursor: str | None


class RetryOut(BaseModel):
    retried: int = Field(description="failed messages queued again by this call")
    campaign: CampaignOut


class WinnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    variant: int = Field(ge=1, le=5, description="the variant the rest of the recipients get")
