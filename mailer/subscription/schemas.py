"""Topic, form, subscription and consent-record bodies of /v1/topics, /v1/forms and
/v1/contacts/{email}/topics."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mailer.types import BodyId

TopicStatus = Literal["subscribed", "unconfirmed", "unsubscribed"]
Attribute = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]


class TopicIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"name": "Weekly newsletter", "public": True, "double_opt_in": True}]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    # offered in the preference centre to contacts not subscribed to it
    public: bool = False
    # a form's signup waits for the confirmation link before any mail of this topic
    double_opt_in: bool = True


class TopicPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    public: bool | None = None
    double_opt_in: bool | None = None


class TopicOut(BaseModel):
    id: int
    name: str
    description: str
    public: bool
    double_opt_in: bool
    created_at: datetime
    updated_at: datetime


class TopicPage(BaseModel):
    items: list[TopicOut]
    next_cursor: str | None


class TopicChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    topic_id: BodyId
    status: Literal["subscribed", "unsubscribed"]


class ContactTopicsIn(BaseModel):
    """Subscriptions to set (source ``api``); topics not named stay as they are."""

    model_config = ConfigDict(extra="forbid")

    topics: list[TopicChoice] = Field(min_length=1, max_length=100)


class ContactTopicOut(BaseModel):
    topic_id: int
    name: str
    status: TopicStatus
    updated_at: datetime


class ContactTopicsOut(BaseModel):
    email: str
    topics: list[ContactTopicOut]


class ConsentRecord(BaseModel):
    """One change of a subscription: when, how, what was shown, from where."""

    id: int
    topic_id: int
    topic: str
    status: TopicStatus
    source: str
    form_id: int | None
    form_version: int | None
    shown: str | None
    ip: str | None
    user_agent: str | None
    changed_at: datetime


class ConsentPage(BaseModel):
    items: list[ConsentRecord]
    next_cursor: str | None


class FormIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "Footer signup",
                    "topic_ids": [1],
                    "fields": ["first_name"],
                    "consent_text": "Send me the weekly newsletter. I can leave at any time.",
                    "from_address": "Acme <news@acme.example>",
                }
            ]
        },
    )

    name: str = Field(min_length=1, max_length=200)
    topic_ids: list[BodyId] = Field(min_length=1, max_length=20)
    # contact attributes asked for (text inputs) besides the address
    fields: list[Attribute] = Field(default_factory=list, max_length=10)
    consent_text: str = Field(default="", max_length=5000)
    # where the browser goes after a submit; absent: a page with ``message``
    redirect_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://\S+$")
    message: str = Field(
        default="Thank you. If you asked for a newsletter, check your inbox to confirm.",
        max_length=2000,
    )
    # the confirmation mail's sender
    from_address: str = Field(min_length=3, max_length=600)
    # the double opt-in mail, a template with ``data.confirm_url``; absent: the built-in one
    confirm_subject: str | None = Field(default=None, min_length=1, max_length=1000)
    confirm_html: str | None = Field(default=None, min_length=1, max_length=100_000)


class FormPatch(BaseModel):
    """A change to a form; a change of what it shows bumps its ``version``."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    topic_ids: list[BodyId] | None = Field(default=None, min_length=1, max_length=20)
    fields: list[Attribute] | None = Field(default=None, max_length=10)
    consent_text: str | None = Field(default=None, max_length=5000)
    redirect_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://\S+$")
    message: str | None = Field(default=None, max_length=2000)
    from_address: str | None = Field(default=None, min_length=3, max_length=600)
    confirm_subject: str | None = Field(default=None, min_length=1, max_length=1000)
    confirm_html: str | None = Field(default=None, min_length=1, max_length=100_000)


class FormOut(BaseModel):
    id: int
    name: str
    topic_ids: list[int]
    fields: list[str]
    consent_text: str
    redirect_url: str | None
    message: str
    from_address: str
    confirm_subject: str | None
    confirm_html: str | None
    version: int
    # the hosted page, and an HTML snippet that embeds the form in another site
    url: str
    embed_html: str
    created_at: datetime


class FormPage(BaseModel):
    items: list[FormOut]
    next_cursor: str | None


class Submitted(BaseModel):
    """The answer to every accepted-looking submission, whatever the address was."""

    status: Literal["ok"] = "ok"
    message: str
