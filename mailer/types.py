"""Small shared types for the HTTP layer.

Every id the API takes is one of these: a value PostgreSQL's bigint cannot hold, or one
below 1, is a 422 before any query runs (never an asyncpg overflow, never a 500).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path
from pydantic import Field

MAX_ID = 2**63 - 1

# an id in the path: /v1/templates/{template_id}
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
# an id in a JSON body: {"template_id": ...}
BodyId = Annotated[int, Field(ge=1, le=MAX_ID)]
# a template's version number in a JSON body: an integer column, so above 2**31 - 1 is a 422
Version = Annotated[int, Field(ge=1, le=2**31 - 1)]

# a message's status, as the list routes filter by it (campaign and transactional mail)
MessageStatus = Literal[
    "queued",
    "claimed",
    "sending",
    "sent",
    "delivered",
    "bounced",
    "complained",
    "failed",
    "suppressed",
    "cancelled",
]

# a campaign's status (mailer.models.campaign.CAMPAIGN_STATUSES), as GET /v1/campaigns filters
CampaignStatus = Literal[
    "draft", "scheduled", "sending", "paused", "completed", "cancelled", "failed"
]
