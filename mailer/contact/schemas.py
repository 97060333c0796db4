"""Contact and import bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mailer.types import BodyId


class ContactIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"attributes": {"first_name": "Ada", "age": 36}, "tags": ["vip"]}]
        },
    )

    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list, max_length=200)
    # a change is recorded (contact_status_changes, source "api"); absent: left as it is
    status: Literal["subscribed", "unsubscribed"] | None = None
    # topic id → its subscription (source "api", with a consent record); topics not named
    # are left as they are (GET/PUT /v1/contacts/{email}/topics)
    topics: dict[BodyId, Literal["subscribed", "unsubscribed"]] | None = Field(
        default=None, max_length=100
    )


class ContactPatch(BaseModel):
    """A change to an existing contact: what is absent is left as it is."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "attributes": {"plan": "pro", "trial_ends": None},
                    "tags_add": ["customer"],
                    "tags_remove": ["trial"],
                }
            ]
        },
    )

    # merged into the contact's attributes; a key given as null is removed
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags_add: list[str] = Field(default_factory=list, max_length=200)
    tags_remove: list[str] = Field(default_factory=list, max_length=200)
    status: Literal["subscribed", "unsubscribed"] | None = None


class ContactOut(BaseModel):
    id: int
    email: str
    attributes: dict[str, Any]
    tags: list[str]
    status: str
    suppressed: bool
    created_at: datetime
    updated_at: datetime


class ImportAccepted(BaseModel):
    id: int
    status: str


class ImportRowError(BaseModel):
    row: int  # line of the file the row starts on; the header is line 1
    email: str
    reason: str


class ImportOut(BaseModel):
    id: int
    status: str
    total_rows: int  # data rows read so far (all of them once completed)
    created: int
    updated: int
    rejected: int
    errors: list[ImportRowError]  # the first MAX_ERRORS rejects; `rejected` counts them all
    failure: str | None
    created_at: datetime
    finished_at: datetime | None


class ContactPage(BaseModel):
    items: list[ContactOut]
    next_cursor: str | None


class ErasureOut(BaseModel):
    email_erased: bool  # a contact existed and is gone
    messages: int  # messages whose personal data was erased
    events: int
    suppressed: bool  # the address stays on the suppression list
