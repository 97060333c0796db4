"""Transactional messages over HTTP: what is accepted, and what is answered."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mailer.deliverability.tags import tag_problem

# the tags every message carries already; a caller may not set them
RESERVED_TAGS = frozenset({"mail_class", "campaign_id", "message_id", "test"})
MAX_TAGS = 10

# headers a caller may set: the threading and list headers, and private X- headers other
# than SES' own; everything else (From, To, Subject, DKIM, Content-*, …) is ours to write
ALLOWED_HEADERS = frozenset(
    {
        "in-reply-to",
        "references",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "auto-submitted",
        "precedence",
        "x-entity-ref-id",
    }
)
_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,76}")
MAX_HEADERS = 20


def _check_header(name: str, value: str) -> None:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"header {name!r}: not a header name")
    lower = name.lower()
    private = lower.startswith("x-") and not lower.startswith(("x-ses-", "x-amz"))
    if lower not in ALLOWED_HEADERS and not private:
        raise ValueError(
            f"header {name!r} may not be set; allowed: X- headers (not X-SES-) and "
            + ", ".join(sorted(ALLOWED_HEADERS))
        )
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"header {name!r}: the value may not hold line breaks")
    if len(name) + 2 + len(value) > 998:
        raise ValueError(f"header {name!r}: longer than 998 characters")


class MessageIn(BaseModel):
    """A stored template (``template_id``, ``data``) or inline ``subject``/``html``/``text``
    (rendered as templates too)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "to": "ada@example.com",
                    "from_address": "Acme <hello@acme.example>",
                    "subject": "Your code {{ data.code }}",
                    "html": "<p>Your code is <b>{{ data.code }}</b></p>",
                    "data": {"code": "123456"},
                }
            ]
        },
    )

    to: str = Field(min_length=3, max_length=320)
    from_address: str = Field(min_length=3, max_length=600)
    reply_to: str | None = Field(default=None, min_length=3, max_length=600)
    template_id: int | None = Field(default=None, ge=1, le=2**63 - 1)
    subject: str | None = Field(default=None, min_length=1, max_length=1000)
    html: str | None = Field(default=None, min_length=1, max_length=500_000)
    text: str | None = Field(default=None, min_length=1, max_length=500_000)
    data: dict[str, Any] = Field(default_factory=dict)
    mail_class: str = Field(default="transactional", min_length=1, max_length=32)
    tags: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: dict[str, str]) -> dict[str, str]:
        if len(tags) > MAX_TAGS:
            raise ValueError(f"at most {MAX_TAGS} tags")
        for name, value in tags.items():
            if name in RESERVED_TAGS:
                raise ValueError(f"tag {name!r} is set by the mailer")
            if (problem := tag_problem(name, value)) is not None:
                raise ValueError(problem)
        return tags

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        if len(headers) > MAX_HEADERS:
            raise ValueError(f"at most {MAX_HEADERS} headers")
        seen: set[str] = set()
        for name, value in headers.items():
            _check_header(name, value)
            if name.lower() in seen:
                raise ValueError(f"header {name!r} given twice")
            seen.add(name.lower())
        return headers

    @model_validator(mode="after")
    def _content(self) -> MessageIn:
        inline = [f for f in ("subject", "html", "text") if getattr(self, f) is not None]
        if self.template_id is not None and inline:
            raise ValueError(f"give template_id or inline content, not both ({inline[0]})")
        if self.template_id is None and (self.subject is None or self.html is None):
            raise ValueError("give template_id, or subject and html")
        return self


class MessageAccepted(BaseModel):
    id: int
    status: str


class EventOut(BaseModel):
    type: str
    subtype: str | None
    occurred_at: datetime
    data: dict[str, Any]


class MessageOut(BaseModel):
    id: int
    status: str
    to: str
    from_address: str | None
    reply_to: str | None
    mail_class: str
    template_version_id: int | None
    region: str | None
    ses_message_id: str | None
    error: str | None
    attempts: int
    tags: dict[str, str]
    test_campaign_id: int | None
    created_at: datetime
    sent_at: datetime | None
    events: list[EventOut]


class MessageSummary(BaseModel):
    id: int
    status: str
    to: str
    mail_class: str
    region: str | None
    ses_message_id: str | None
    error: str | None
    created_at: datetime
    sent_at: datetime | None


class MessagePage(BaseModel):
    items: list[MessageSummary]
    next_cursor: str | None


class ContactMessage(MessageSummary):
    """One message to a contact: its campaign (None for transactional mail; a test send
    names its campaign in ``test_campaign_id``) and what happened to it."""

    campaign_id: int | None
    test_campaign_id: int | None
    events: list[EventOut]


class ContactMessagePage(BaseModel):
    items: list[ContactMessage]
    next_cursor: str | None


class BatchIn(BaseModel):
    """Up to 100 messages; each item is a message plus its own ``idempotency_key``, checked
    on its own so that one bad item fails only itself."""

    model_config = ConfigDict(extra="forbid")

    messages: list[dict[str, Any]] = Field(min_length=1, max_length=100)


class BatchItemOut(BaseModel):
    index: int
    status_code: int
    id: int | None = None
    status: str | None = None
    error: dict[str, Any] | None = None


class BatchOut(BaseModel):
    items: list[BatchItemOut]


class TestSendOut(BaseModel):
    messages: list[MessageAccepted]
