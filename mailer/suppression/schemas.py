from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal["all", "marketing"]
Source = Literal["bounce", "complaint", "manual", "unsubscribe"]


class SuppressionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="manual", min_length=1, max_length=500)
    scope: Scope = "all"


class SuppressionOut(BaseModel):
    email: str
    reason: str
    scope: str
    source: str
    created_at: datetime


class SuppressionPage(BaseModel):
    items: list[SuppressionOut]
    next_cursor: str | None
