"""Contacts: created or updated by address, read with their suppression state, erased."""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, true
from sqlalchemy.ext.asyncio import AsyncSession

from mailer.audience import repository as audience_repository
from mailer.audience.filters import compile_filter
from mailer.contact import repository
from mailer.contact.addresses import normalise, valid_address
from mailer.contact.schemas import (
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    ErasureOut,
)
from mailer.errors import Invalid, NotFound
from mailer.models import Contact
from mailer.pagination import Page


async def put(session: AsyncSession, email: str, body: ContactIn) -> tuple[ContactOut, bool]:
    """Create the contact at ``email`` or replace its attributes and tags (a full
    replacement: what the body leaves out is gone); True when it was created."""
    address = valid_address(email, ["path", "email"])
    _check_attributes(body.attributes, ["body", "attributes"])
    contact_id, created = await repository.upsert(
        session, address, body.attributes, _tags(body.tags)
    )
    if body.status is not None:
        await repository.record_status_change(session, [address], body.status, "api")
    if body.topics and (missing := await repository.set_topics(session, contact_id, body.topics)):
        raise Invalid.at(["body", "topics"], f"no topics {missing}")
    return await get(session, address), created


async def patch(session: AsyncSession, email: str, body: ContactPatch) -> ContactOut:
    """Merge a change into the existing contact at ``email`` (404 if there is none):
    attributes merged (null removes a key), tags added and removed, status changed."""
    address = valid_address(email, ["path", "email"])
    _check_attributes(body.attributes, ["body", "attributes"])
    found = await repository.patch(
        session, address, body.attributes, _tags(body.tags_add), _tags(body.tags_remove)
    )
    if not found:
        raise NotFound(f"no contact {address!r}: create it with PUT /v1/contacts/{{email}}")
    if body.status is not None:
        await repository.record_status_change(session, [address], body.status, "api")
    return await get(session, address)


def _tags(tags: list[str]) -> list[str]:
    return sorted({t.strip() for t in tags if t.strip()})


def _check_attributes(value: Any, path: list[str | int]) -> None:
    # what jsonb cannot hold is a 422, not a 500
    if isinstance(value, str) and "\x00" in value:
        raise Invalid.at(path, "strings cannot contain NUL (\\u0000)")
    if isinstance(value, float) and not math.isfinite(value):
        raise Invalid.at(path, "numbers must be finite")
    if isinstance(value, list):
        for i, item in enumerate(value):
            _check_attributes(item, [*path, i])
    if isinstance(value, dict):
        for key, item in value.items():
            _check_attributes(key, path)
            _check_attributes(item, [*path, key])


def _out(contact: Contact, suppressed: bool) -> ContactOut:
    return ContactOut(
        id=contact.id,
        email=contact.email,
        attributes=contact.attributes,
        tags=contact.tags,
        status=contact.status,
        suppressed=suppressed,
        created_at=contact.created_at,
        updated_at=contact.updated_at,
    )


async def get(session: AsyncSession, email: str) -> ContactOut:
    found = await repository.get(session, normalise(email))
    if found is None:
        raise NotFound(f"no contact {normalise(email)!r}")
    return _out(*found)


async def page(session: AsyncSession, tree: dict[str, Any] | None, page: Page[int]) -> ContactPage:
    """Contacts by id, ``limit`` at a time, optionally those a segment filter matches."""
    where: ColumnElement[bool] = true()
    if tree is not None:
        where = compile_filter(tree)
        await audience_repository.custom_plans(session)
    rows, next_cursor = page.cut(
        await repository.page(session, where, page.last or 0, page.fetch), key=lambda r: r[0].id
    )
    return ContactPage(items=[_out(c, s) for c, s in rows], next_cursor=next_cursor)


def address_hmac(secret_key: str, address: str) -> str:
    return hmac.new(secret_key.encode(), address.encode(), hashlib.sha256).hexdigest()


async def was_erased(session: AsyncSession, keys: Sequence[str], email: str) -> bool:
    """Whether ``email`` was erased: its HMAC under any verifying key (``mailer.secrets``)
    is recorded, so an erasure recorded before a key rotation is still found."""
    address = normalise(email)
    return await repository.erased(session, [address_hmac(k, address) for k in keys])


async def erase(session: AsyncSession, email: str, secret_key: str) -> ErasureOut:
    """Erase the personal data of ``email`` (right to be forgotten); 404 if there is none.

    The suppression, if any, stays: it is what keeps the address from being mailed again.
    The erasure is recorded by an HMAC of the address under ``secret_key`` (the signing
    key), never the address itself.
    """
    address = normalise(email)
    existed, messages, events, suppressed = await repository.erase(
        session, address, address_hmac(secret_key, address)
    )
    if not existed and not messages and not events:
        raise NotFound(f"no contact {address!r}")
    return ErasureOut(email_erased=existed, messages=messages, events=events, suppressed=suppressed)


async def status_history(session: AsyncSession, contact_id: int) -> list[Any]:
    """A contact's subscribed ↔ unsubscribed changes, oldest first (consent records)."""
    return await repository.status_changes(session, contact_id)
