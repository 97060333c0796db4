from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list, max_length=200)


class ContactOut(BaseModel):
    id: int
    email: str
    attributes: dict[str, Any]
    tags: list[str]
    status: str
    suppressed: bool
    created_at: datetime
    updated_at: datetime
