"""Suppression bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Scope = Literal["all", "marketing"]
Source = Literal["bounce", "complaint", "manual", "unsubscribe", "import", "ses"]


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


class ImportRowError(BaseModel):
    row: int  # line of the file the row starts on; the header is line 1
    email: str
    reason: str


class ImportReport(BaseModel):
    total_rows: int  # data rows read (blank lines are not rows)
    created: int  # addresses newly suppressed
    updated: int  # suppressions widened from marketing to all
    unchanged: int  # addresses suppressed already, as widely or wider
    rejected: int
    errors: list[ImportRowError]  # the first 1,000 rejected rows; `rejected` counts them all
