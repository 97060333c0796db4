from __future__ import annotations

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

