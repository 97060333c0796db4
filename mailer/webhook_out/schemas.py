"""Bodies of ``/v1/webhooks``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mailer.types import BodyId
from mailer.webhook_out.outbox import EventName

# an event, or a family of events (outbox.FAMILIES: a test keeps them equal)
EventType = Literal[
    EventName,
    "campaign.*",
    "contact.*",
    "import.*",
    "message.*",
    "suppression.*",
    "webhook.*",
]
MailClass = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[a-z0-9_-]+$")]
Url = Annotated[
    str,
    Field(
        min_length=8,
        max_length=2000,
        pattern=r"^[^\s\x00-\x1f\x7f]+$",
        examples=["https://example.com/hooks"],
    ),
]
DeliveryStatus = Literal["pending", "delivered", "dead"]


class EndpointIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "url": "https://example.com/hooks/mail",
                    "event_types": ["message.*", "contact.unsubscribed"],
                    "mail_classes": ["transactional"],
                    "description": "password resets",
                }
            ]
        },
    )

    url: Url
    # omitted or null: every event type; a family ("message.*") takes all of its types
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=50)
    mail_classes: list[MailClass] | None = Field(default=None, min_length=1, max_length=20)
    campaign_ids: list[BodyId] | None = Field(default=None, min_length=1, max_length=1000)
    enabled: bool = Field(default=True, strict=True)
    description: str = Field(default="", max_length=500)


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    event_types: list[EventType] | None = Field(default=None, min_length=1, max_length=50)
    mail_classes: list[MailClass] | None = Field(default=None, min_length=1, max_length=20)
    campaign_ids: list[BodyId] | None = Field(default=None, min_length=1, max_length=1000)
    enabled: bool | None = Field(default=None, strict=True)
    description: str | None = Field(default=None, max_length=500)


class EndpointOut(BaseModel):
    id: int
    url: str
    description: str
    event_types: list[str] | None
    mail_classes: list[str] | None
    campaign_ids: list[int] | None
    enabled: bool
    # set when the deliverer disabled it after a long run of failures
    disabled_reason: str | None
    consecutive_failures: int
    failing_since: datetime | None
    # the previous secret signs too until then (a rotation's overlap)
    previous_secret_until: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointCreated(EndpointOut):
    secret: str  # shown once: ``whsec_`` + base64, the Standard Webhooks signing key


class EndpointPage(BaseModel):
    items: list[EndpointOut]
    next_cursor: str | None


class RotateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # how long the old secret keeps signing next to the new one
    overlap_seconds: float = Field(default=86_400.0, ge=0, le=7 * 86_400.0, strict=True)


class RotateOut(BaseModel):
    secret: str
    previous_secret_until: datetime | None


class DeliveryOut(BaseModel):
    id: int
    webhook_id: str  # the ``webhook-id`` header, the same for every attempt
    type: str
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_response: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None  # pending only
    delivered_at: datetime | None
    created_at: datetime
    payload: dict[str, Any]


class DeliveryPage(BaseModel):
    items: list[DeliveryOut]
    next_cursor: str | None


class ReplayOut(BaseModel):
    replayed: int  # deliveries written again (the same webhook-id and payload)


# an RFC 3339 time with its offset (a number is not a time here)
SINCE_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?([Zz]|[+-]\d{2}:?\d{2})$"
