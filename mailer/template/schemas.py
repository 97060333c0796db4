from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TemplateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=1000)
    html: str = Field(min_length=1, max_length=500_000)
    text: str | None = Field(default=None, max_length=500_000)


class TemplateVersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=1000)
    html: str = Field(min_length=1, max_length=500_000)
    text: str | None = Field(default=None, max_length=500_000)


class TemplateOut(BaseModel):
    id: int
    name: str
    version: int
    subject: str
    html: str
    text: str | None


class RenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any] = Field(default_factory=dict)
    email: str | None = None


class RenderOut(BaseModel):
    subject: str
    html: str
    text: str
    headers: dict[str, str]
