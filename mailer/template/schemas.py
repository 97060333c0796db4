"""Template request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

TemplateFormat = Literal["html", "mjml"]


class TemplateIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "newsletter",
                    "subject": "Hello {{ contact.attributes.first_name | default('there') }}",
                    "html": (
                        '{% extends "layouts/default.html" %}{% block content %}'
                        "<p>News for {{ contact.email }}</p>{% endblock %}"
                    ),
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=1000)
    html: str = Field(min_length=1, max_length=500_000)
    text: str | None = Field(default=None, max_length=500_000)
    format: TemplateFormat = "html"


class TemplateVersionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    subject: str = Field(min_length=1, max_length=1000)
    html: str = Field(min_length=1, max_length=500_000)
    text: str | None = Field(default=None, max_length=500_000)
    format: TemplateFormat = "html"


class TemplateOut(BaseModel):
    id: int
    name: str
    version: int
    subject: str
    html: str  # what is rendered: for MJML, the compiled HTML
    text: str | None
    format: TemplateFormat
    source: str | None  # the MJML source of an MJML version
    created_at: datetime
    # on save: what mailbox providers would distrust (images without alt, links showing
    # another URL, link shorteners); the template is saved all the same
    warnings: list[str] = Field(default_factory=list)


class VersionOut(BaseModel):
    version: int
    subject: str
    format: TemplateFormat
    created_at: datetime


class TemplateDetail(TemplateOut):
    versions: list[VersionOut]


class TemplateSummary(BaseModel):
    id: int
    name: str
    version: int
    created_at: datetime


class TemplatePage(BaseModel):
    items: list[TemplateSummary]
    next_cursor: str | None


class RenderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any] = Field(default_factory=dict)
    email: str | None = Field(default=None, max_length=320)
    mail_class: Literal["marketing", "transactional"] = "marketing"


class RenderOut(BaseModel):
    subject: str
    html: str
    text: str
    headers: dict[str, str]
