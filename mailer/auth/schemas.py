"""API key bodies."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class ApiKeyOut(BaseModel):
    """An API key as listed: never the key, only the prefix that names it (``mk_<prefix>_…``)."""

    id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyPage(BaseModel):
    items: list[ApiKeyOut]
    next_cursor: str | None
